#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "profile_store.h"
#include "temp_dir.h"

using namespace memgov;

namespace {

std::string read_all(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::size_t files_named(const std::filesystem::path& dir, const std::string& prefix) {
    std::size_t count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
        count += entry.path().filename().string().starts_with(prefix);
    return count;
}

}  // namespace

TEST_CASE("profiles round-trip through the file, including awkward keys") {
    TempDir dir;
    std::string awkward = std::string("/src/new\nline and \"quote\".cc");
    {
        ProfileStore store(dir.path() / "store");
        store.load();
        CHECK(store.profiles().empty());
        store.record("/src/a.cc", {.tool = "g++", .peak_bytes = 700}, 1000);
        store.record(awkward, {.tool = "g++", .peak_bytes = 5}, 1001);
        REQUIRE(store.save());
        CHECK(store.take_warnings().empty());
    }
    ProfileStore again(dir.path() / "store");
    again.load();
    REQUIRE(again.profiles().size() == 2);
    CHECK(again.profiles().at("/src/a.cc").peak_bytes == 700);
    CHECK(again.profiles().at("/src/a.cc").tool == "g++");
    CHECK(again.profiles().at(awkward).peak_bytes == 5);
    struct stat info {};
    REQUIRE(stat((dir.path() / "store").c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0700);
    REQUIRE(stat((dir.path() / "store/profiles.json").c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
}

TEST_CASE("a later sample replaces the peak, an unfinished job only raises it") {
    TempDir dir;
    ProfileStore store(dir.path());
    store.record("/k", {.tool = "g++", .peak_bytes = 700}, 1);
    store.record("/k", {.tool = "g++", .peak_bytes = 500}, 2);
    CHECK(store.profiles().at("/k").peak_bytes == 500);
    CHECK(store.profiles().at("/k").samples == 2);
    store.record("/k", {.tool = "g++", .peak_bytes = 300, .complete = false}, 3);
    CHECK(store.profiles().at("/k").peak_bytes == 500);
    store.record("/k", {.tool = "g++", .peak_bytes = 900, .complete = false}, 4);
    CHECK(store.profiles().at("/k").peak_bytes == 900);
}

TEST_CASE("two stores writing the same file merge instead of losing profiles") {
    TempDir dir;
    ProfileStore first(dir.path());
    ProfileStore second(dir.path());
    first.load();
    second.load();
    first.record("/a", {.tool = "g++", .peak_bytes = 1}, 10);
    second.record("/b", {.tool = "g++", .peak_bytes = 2}, 11);
    second.record("/shared", {.tool = "g++", .peak_bytes = 20}, 12);
    first.record("/shared", {.tool = "g++", .peak_bytes = 30}, 13);  // newer: wins
    REQUIRE(second.save());
    REQUIRE(first.save());
    ProfileStore reader(dir.path());
    reader.load();
    CHECK(reader.profiles().size() == 3);
    CHECK(reader.profiles().at("/shared").peak_bytes == 30);
    CHECK(reader.profiles().at("/b").peak_bytes == 2);
}

TEST_CASE("bad store files are set aside with a warning, never overwritten silently") {
    const char* bad_contents[] = {
        "{\"format\":\"memgov-profiles\",\"vers",
        "garbage \x01\x02",
        "{\"format\":\"memgov-profiles\",\"version\":99,\"profiles\":{}}",
        "{\"format\":\"other\"}",
        "[]",
        "{\"format\":\"memgov-profiles\",\"version\":1,\"profiles\":{\"/k\":{\"peak_bytes\":-4}}}",
        "{\"format\":1,\"ples\":{}}",  // found by fuzz_profiles
        "{\"format\":\"memgov-profiles\",\"version\":\"1\",\"profiles\":{}}",
        "{\"format\":\"memgov-profiles\",\"version\":1,\"profiles\":{\"/k\":{\"peak_bytes\":1,\"tool\":7}}}",
        "{\"format\":\"memgov-profiles\",\"version\":1,\"profiles\":{\"/k\":{\"peak_bytes\":1,\"last_seen\":\"x\"}}}"};
    for (const char* contents : bad_contents) {
        TempDir dir;
        dir.write("profiles.json", contents);
        ProfileStore store(dir.path());
        store.load();
        auto warnings = store.take_warnings();
        REQUIRE_MESSAGE(warnings.size() == 1, contents);
        CHECK(warnings[0].find("moved aside") != std::string::npos);
        CHECK(store.profiles().empty());
        CHECK(files_named(dir.path(), "profiles.json.bad-") == 1);
        store.record("/k", {.tool = "g++", .peak_bytes = 1}, 1);
        CHECK(store.save());
        CHECK(read_all(dir.path() / "profiles.json").find("/k") != std::string::npos);
    }
}

TEST_CASE("a symlink or a directory at the store's path is refused and left alone") {
    TempDir dir;
    auto target = dir.write("elsewhere.json", "precious");
    std::filesystem::create_symlink(target, dir.path() / "profiles.json");
    ProfileStore store(dir.path());
    store.load();
    auto warnings = store.take_warnings();
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("symbolic link") != std::string::npos);
    store.record("/k", {.tool = "g++", .peak_bytes = 1}, 1);
    CHECK_FALSE(store.save());
    CHECK(read_all(target) == "precious");
    CHECK(std::filesystem::is_symlink(dir.path() / "profiles.json"));

    TempDir other;
    std::filesystem::create_directory(other.path() / "profiles.json");
    ProfileStore dir_store(other.path());
    dir_store.load();
    CHECK(dir_store.take_warnings().size() == 1);
    dir_store.record("/k", {.tool = "g++", .peak_bytes = 1}, 1);
    CHECK_FALSE(dir_store.save());
    CHECK(std::filesystem::is_directory(other.path() / "profiles.json"));
}

TEST_CASE("a directory that cannot be created is reported, and what was learned stays in memory") {
    TempDir dir;
    dir.write("a-file", "not a directory");
    ProfileStore store(dir.path() / "a-file" / "memgov");  // fails even for root
    store.record("/k", {.tool = "g++", .peak_bytes = 1}, 1);
    CHECK_FALSE(store.save());
    auto warnings = store.take_warnings();
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("cannot create") != std::string::npos);
    CHECK(store.dirty());
    CHECK(store.profiles().at("/k").peak_bytes == 1);
}

TEST_CASE("default directory is the invoking user's cache") {
    CHECK(default_profiles_dir(std::string("/home/alice")) == "/home/alice/.cache/memgov");
}

TEST_CASE("forget and import survive a save, even against another writer") {
    TempDir dir;
    ProfileStore store(dir.path());
    store.record("/old", {.tool = "g++", .peak_bytes = 1}, 100);
    store.record("/new", {.tool = "g++", .peak_bytes = 2}, 5000);
    store.record("/gone", {.tool = "g++", .peak_bytes = 3}, 5000);
    REQUIRE(store.save());

    ProfileStore editor(dir.path());
    editor.load();
    CHECK(editor.forget("/gone") == 1);
    CHECK(editor.forget("/absent") == 0);
    CHECK(editor.forget_older_than(1000) == 1);
    Profiles shared{{"/new", {.peak_bytes = 99, .samples = 1, .last_seen = 4000, .tool = "g++"}},
                    {"/team", {.peak_bytes = 7, .samples = 3, .last_seen = 10, .tool = "clang++"}}};
    CHECK(editor.merge_in(shared) == 1);  // "/new" is older than ours: kept
    REQUIRE(editor.save());

    ProfileStore reader(dir.path());
    reader.load();
    CHECK(reader.profiles().size() == 2);
    CHECK(reader.profiles().at("/new").peak_bytes == 2);
    CHECK(reader.profiles().at("/team").tool == "clang++");
}

TEST_CASE("a huge store file (100 MB) is set aside, not parsed, not overwritten") {
    TempDir dir;
    {
        std::ofstream huge(dir.path() / "profiles.json");
        std::string block(1 << 20, ' ');
        for (int i = 0; i < 100; ++i) huge << block;
    }
    ProfileStore store(dir.path());
    store.load();
    auto warnings = store.take_warnings();
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("100 MiB") != std::string::npos);
    CHECK(files_named(dir.path(), "profiles.json.bad-") == 1);
    CHECK(std::filesystem::file_size(std::filesystem::directory_iterator(dir.path())->path()) > 0);
}

TEST_CASE("keys with NUL, newline and non-UTF-8 bytes survive or are replaced, never crash") {
    TempDir dir;
    std::string nul_key("/src/a\0b.c", 10);
    std::string bad_utf8 = "/src/\xff\xfe.c";
    {
        ProfileStore store(dir.path());
        store.record(nul_key, {.tool = "g++", .peak_bytes = 1}, 1);
        store.record("/src/new\nline.c", {.tool = "g++", .peak_bytes = 2}, 1);
        store.record(bad_utf8, {.tool = "g++", .peak_bytes = 3}, 1);
        REQUIRE(store.save());
    }
    ProfileStore again(dir.path());
    again.load();
    CHECK(again.take_warnings().empty());
    CHECK(again.profiles().at(nul_key).peak_bytes == 1);
    CHECK(again.profiles().at("/src/new\nline.c").peak_bytes == 2);
    CHECK(again.profiles().size() == 3);  // the non-UTF-8 key is kept, its bad bytes replaced
}

TEST_CASE("a store directory owned by someone else, or writable by anyone, is refused") {
    TempDir dir;
    ProfileStore foreign(dir.path(), geteuid() + 1);
    foreign.load();
    foreign.record("/k", {.tool = "g++", .peak_bytes = 1}, 1);
    CHECK_FALSE(foreign.save());
    auto warnings = foreign.take_warnings();
    REQUIRE(warnings.size() == 2);
    CHECK(warnings[0].find("not using it") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "profiles.json"));

    std::filesystem::permissions(dir.path(), std::filesystem::perms::others_write, std::filesystem::perm_options::add);
    ProfileStore open_to_all(dir.path());
    open_to_all.record("/k", {.tool = "g++", .peak_bytes = 1}, 1);
    CHECK_FALSE(open_to_all.save());
    CHECK(open_to_all.take_warnings().at(0).find("world-writable") != std::string::npos);
}

TEST_CASE(
    "a growth curve round-trips, an unfinished run or one without a curve (suspended) keeps the last complete run's "
    "curve") {
    TempDir dir;
    GrowthCurve curve;
    curve.duration_ms = 1500;
    for (std::size_t k = 0; k < GrowthCurve::steps; ++k) curve.reach_ms[k] = static_cast<std::uint32_t>(60 * k);
    {
        ProfileStore store(dir.path());
        store.record("/curved", {.tool = "cc1plus", .peak_bytes = 700, .curve = curve}, 1);
        store.record("/flat", {.tool = "cc1plus", .peak_bytes = 70}, 1);
        GrowthCurve other = curve;
        other.duration_ms = 9000;
        store.record("/curved", {.tool = "cc1plus", .peak_bytes = 300, .complete = false, .curve = other}, 2);
        store.record("/curved", {.tool = "cc1plus", .peak_bytes = 700}, 3);  // complete, its build suspended
        REQUIRE(store.save());
    }
    ProfileStore again(dir.path());
    again.load();
    CHECK(again.take_warnings().empty());
    REQUIRE(again.profiles().at("/curved").curve);
    CHECK(*again.profiles().at("/curved").curve == curve);
    CHECK(again.profiles().at("/curved").peak_bytes == 700);
    CHECK_FALSE(again.profiles().at("/flat").curve);
}

TEST_CASE("a curve that is not one is dropped, its entry's peak still counts") {
    std::string steps = "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]";
    auto store_with = [](const std::string& fields) {
        return R"({"format":"memgov-profiles","version":1,"profiles":{"/k":{"peak_bytes":5)" + fields + "}}}";
    };
    std::string error;
    auto good = parse_profiles(store_with(R"(,"duration_ms":20,"reach_ms":)" + steps), error);
    REQUIRE(good);
    CHECK(good->at("/k").curve);
    for (const std::string& bad :
         std::vector<std::string>{R"(,"duration_ms":20)",                      // half a curve
                                  R"(,"reach_ms":)" + steps,                   // the other half
                                  R"(,"duration_ms":10,"reach_ms":)" + steps,  // steps after its end
                                  R"(,"duration_ms":20,"reach_ms":[0,1,2])",   // another step count
                                  R"(,"duration_ms":-1,"reach_ms":)" + steps,  // negative
                                  R"(,"duration_ms":20,"reach_ms":[15,14,13,12,11,10,9,8,7,6,5,4,3,2,1,0])",
                                  R"(,"duration_ms":99999999999,"reach_ms":)" + steps}) {  // beyond 32 bits
        CAPTURE(bad);
        auto parsed = parse_profiles(store_with(bad), error);
        REQUIRE(parsed);
        CHECK(parsed->at("/k").peak_bytes == 5);
        CHECK_FALSE(parsed->at("/k").curve);
    }
}

TEST_CASE("a job's role round-trips, a store from before roles, or a role from a later version, reads as other") {
    TempDir dir;
    ProfileStore store(dir.path());
    store.record("/build/app", {.tool = "g++", .role = JobKind::link, .peak_bytes = 26}, 100);
    store.record("/build/app-lto", {.tool = "g++", .role = JobKind::lto, .peak_bytes = 900}, 100);
    REQUIRE(store.save());
    ProfileStore again(dir.path());
    again.load();
    CHECK(again.profiles().at("/build/app").role == JobKind::link);
    CHECK(again.profiles().at("/build/app-lto").role == JobKind::lto);

    std::string error;
    auto old = parse_profiles(R"({"format":"memgov-profiles","version":1,"profiles":{"/k":{"peak_bytes":5}}})", error);
    REQUIRE(old);
    CHECK(old->at("/k").role == JobKind::other);
    auto later = parse_profiles(
        R"({"format":"memgov-profiles","version":1,"profiles":{"/k":{"peak_bytes":5,"role":"jit"}}})", error);
    REQUIRE(later);
    CHECK(later->at("/k").role == JobKind::other);
    CHECK_FALSE(parse_profiles(
        R"({"format":"memgov-profiles","version":1,"profiles":{"/k":{"peak_bytes":5,"role":7}}})", error));
}
