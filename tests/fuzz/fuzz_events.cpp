// libFuzzer: ring-buffer records as the kernel might send them, truncated or corrupted.
#include <cstddef>
#include <cstdint>

#include "event_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    (void)memgov::decode_event({reinterpret_cast<const std::byte*>(data), size});
    return 0;
}
