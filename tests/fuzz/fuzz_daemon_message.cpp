// libFuzzer: bytes from a socket peer, as the daemon reads a client's request and a client
// reads the daemon's message. Nothing may crash; what parses must encode and parse again
// to the same request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "daemon_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string error;
    if (auto request = memgov::parse_request({data, size}, error)) {
        auto again = memgov::parse_request(memgov::encode_request(*request), error);
        bool registering = request->op == memgov::DaemonRequest::Op::register_build;
        if (!again || again->op != request->op || again->job != request->job || again->ids != request->ids ||
            again->text != request->text || again->cgroup != request->cgroup ||
            again->patience_ms != request->patience_ms ||
            (registering && (again->gate != request->gate || again->ledger != request->ledger)))
            std::abort();
    } else if (error.empty()) {
        std::abort();  // a refusal always says why
    }
    if (auto message = memgov::parse_message({data, size}, error); !message && error.empty()) std::abort();
    return 0;
}
