#include "gate_list.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

namespace memgov {

std::vector<std::string> default_gate_names() {
    static constexpr std::array<std::string_view, 22> plain = {
        "cc",     "c++",     "cc1",    "cc1plus", "cc1obj", "cc1objplus", "lto1",  "f951", "gnat1", "rustc", "ld",
        "ld.bfd", "ld.gold", "ld.lld", "lld",     "mold",   "collect2",   "javac", "nvcc", "cicc",  "go",    "zig",
    };
    static constexpr std::array<std::string_view, 3> gnu_drivers = {"gcc", "g++", "gfortran"};
    static constexpr std::array<std::string_view, 2> llvm_drivers = {"clang", "clang++"};
    static constexpr std::array<std::string_view, 3> gnu_targets = {"x86_64-linux-gnu", "aarch64-linux-gnu",
                                                                    "i686-linux-gnu"};

    std::vector<std::string> names(plain.begin(), plain.end());
    for (auto driver : gnu_drivers) {
        names.emplace_back(driver);
        for (auto target : gnu_targets) names.push_back(fmt::format("{}-{}", target, driver));
        for (int version = 9; version <= 15; ++version) {
            names.push_back(fmt::format("{}-{}", driver, version));
            for (auto target : gnu_targets) names.push_back(fmt::format("{}-{}-{}", target, driver, version));
        }
    }
    for (auto driver : llvm_drivers) {
        names.emplace_back(driver);
        for (int version = 11; version <= 21; ++version) names.push_back(fmt::format("{}-{}", driver, version));
    }
    return names;
}

}  // namespace memgov
