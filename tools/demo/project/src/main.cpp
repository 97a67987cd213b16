#include <cstdio>

std::size_t util();
std::size_t lexer();
std::size_t parser();
std::size_t optimizer();

int main() {
    std::printf("demo: %zu\n", util() ^ lexer() ^ parser() ^ optimizer());
}
