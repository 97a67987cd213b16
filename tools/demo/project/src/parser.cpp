#include "heavy.h"

std::size_t parser() {
    constexpr std::size_t depth = 90;
    return sum_chain(std::make_index_sequence<depth>{}) + std::tuple_size_v<Chain<depth>::Tuple>;
}
