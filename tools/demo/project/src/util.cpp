#include "heavy.h"

std::size_t util() {
    constexpr std::size_t depth = 20;
    return sum_chain(std::make_index_sequence<depth>{}) + std::tuple_size_v<Chain<depth>::Tuple>;
}
