// libFuzzer: the profile store parser must reject or accept any bytes without crashing, and
// whatever it accepts must survive a serialize/parse round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "profile_store.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    std::string error;
    auto parsed = memgov::parse_profiles(text, error);
    if (!parsed) return 0;
    std::string again = memgov::serialize_profiles(*parsed);
    auto reparsed = memgov::parse_profiles(again, error);
    if (!reparsed || reparsed->size() > parsed->size()) std::abort();
    return 0;
}
