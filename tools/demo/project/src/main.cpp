#include <cstdio>

std::size_t light();
std::size_t medium();
std::size_t heavy();
std::size_t heavier();

int main() {
    std::printf("demo: %zu\n", light() ^ medium() ^ heavy() ^ heavier());
}
