// Recursive templates: each instantiation level costs the compiler memory, so a TU's
// peak grows with the depth it asks for.
#pragma once
#include <array>
#include <cstddef>
#include <tuple>
#include <utility>

template <std::size_t N>
struct Chain {
    static constexpr std::size_t value = Chain<N - 1>::value * 31 + N;
    using Tuple = decltype(std::tuple_cat(std::declval<typename Chain<N - 1>::Tuple>(),
                                          std::declval<std::tuple<std::array<char, N % 7 + 1>>>()));
};

template <>
struct Chain<0> {
    static constexpr std::size_t value = 1;
    using Tuple = std::tuple<>;
};

template <std::size_t... I>
constexpr std::size_t sum_chain(std::index_sequence<I...>) {
    return (Chain<I>::value + ... + 0);
}
