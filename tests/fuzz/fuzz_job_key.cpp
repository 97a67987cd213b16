// libFuzzer: argv (NUL-separated, as the kernel hands it over) and a cwd to a job key; the
// same bytes as the head of a preprocessed file (its line markers) to the source it names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "event_decode.h"
#include "job_key.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string block(reinterpret_cast<const char*>(data), size);
    auto split = block.find('\n');
    std::string cwd = split == std::string::npos ? "/" : block.substr(0, split);
    std::string rest = split == std::string::npos ? block : block.substr(split + 1);
    auto argv = memgov::split_argv({rest.data(), rest.size()});
    auto key = memgov::job_key(argv, cwd, [&](const std::string&) { return block; });
    if (key.key.empty()) std::abort();
    if (auto origin = memgov::preprocessed_origin(block); origin && origin->empty()) std::abort();
    return 0;
}
