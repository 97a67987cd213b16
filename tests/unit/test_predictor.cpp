#include <doctest/doctest.h>

#include "predictor.h"

using namespace memgov;

namespace {

Profile compile(std::uint64_t peak, std::string tool = "g++") {
    return {.peak_bytes = peak, .tool = std::move(tool), .role = JobKind::compile};
}

}  // namespace

TEST_CASE("a known key is predicted from its profile") {
    Predictor predictor(512);
    predictor.learn("/src/a.cc", compile(700));
    auto prediction = predictor.predict("/src/a.cc", "g++", JobKind::compile);
    CHECK(prediction.bytes == 700);
    CHECK(prediction.source == PredictionSource::profile);
}

TEST_CASE("an unknown key gets the 75th percentile of its tool and role, else of its role, else the fallback") {
    Predictor predictor(512);
    CHECK(predictor.predict("/x.c", "gcc", JobKind::compile).source == PredictionSource::fallback);
    CHECK(predictor.predict("/x.c", "gcc", JobKind::compile).bytes == 512);
    for (std::uint64_t peak = 100; peak <= 1000; peak += 100)
        predictor.learn("/k" + std::to_string(peak), compile(peak));
    // 100 … 1000 and the fallback (512) as one more peer: the 9th of 11.
    auto same_tool = predictor.predict("/new.cc", "g++", JobKind::compile);
    CHECK(same_tool.source == PredictionSource::same_tool);
    CHECK(same_tool.bytes == 800);
    auto same_role = predictor.predict("/new.c", "clang", JobKind::compile);
    CHECK(same_role.source == PredictionSource::same_role);
    CHECK(same_role.bytes == 800);
}

TEST_CASE("links are not predicted from compiles by the same driver (the issue's 26 MB links predicted at 440 MB)") {
    Predictor predictor(512);
    for (std::uint64_t peak : {330, 360, 400, 440})
        predictor.learn("/src/t" + std::to_string(peak) + ".cpp", compile(peak));
    // No link has ended yet: the fallback, not the compiles' figure.
    CHECK(predictor.predict("/build/test1", "g++", JobKind::link).source == PredictionSource::fallback);
    // One link that ended: the fallback as a peer counts at most 4x it.
    predictor.learn("/build/test0", {.peak_bytes = 26, .tool = "g++", .role = JobKind::link});
    auto link = predictor.predict("/build/test1", "g++", JobKind::link);
    CHECK(link.source == PredictionSource::same_tool);
    CHECK(link.bytes == 104);
    predictor.learn("/build/test1", {.peak_bytes = 26, .tool = "g++", .role = JobKind::link});
    predictor.learn("/build/test2", {.peak_bytes = 27, .tool = "g++", .role = JobKind::link});
    CHECK(predictor.predict("/build/test3", "g++", JobKind::link).bytes == 27);
    // ... and an LTO link is neither.
    CHECK(predictor.predict("/build/lto", "g++", JobKind::lto).source == PredictionSource::fallback);
    CHECK(predictor.predict("/src/new.cpp", "g++", JobKind::compile).bytes == 440);
}

TEST_CASE(
    "jobs still running count among their peers: the light ones that ended first do not drag the prediction down") {
    Predictor predictor(512);
    for (std::uint64_t peak : {330, 340, 350, 360})
        predictor.learn("/src/light" + std::to_string(peak) + ".cpp", compile(peak));
    CHECK(predictor.predict("/src/heavy2.cpp", "g++", JobKind::compile).bytes == 360);
    // Two heavy files are running, expected (re-predicted) beyond every light one.
    predictor.observe_running("/src/heavy0.cpp", "g++", JobKind::compile, 700, false);
    predictor.observe_running("/src/heavy1.cpp", "g++", JobKind::compile, 650, false);
    CHECK(predictor.predict("/src/heavy2.cpp", "g++", JobKind::compile).bytes == 650);
    // What a running job is expected to reach only ever rises.
    predictor.observe_running("/src/heavy1.cpp", "g++", JobKind::compile, 100, false);
    CHECK(predictor.predict("/src/heavy2.cpp", "g++", JobKind::compile).bytes == 650);
    CHECK(predictor.largest() == 700);
    // Once it ends, its measured peak replaces what was expected of it.
    predictor.learn("/src/heavy0.cpp", compile(815));
    predictor.forget_running("/src/heavy1.cpp");
    CHECK(predictor.predict("/src/heavy2.cpp", "g++", JobKind::compile).bytes == 512);  // 5th of 6
    CHECK(predictor.largest() == 815);
}

TEST_CASE("the first job to end, a small one, does not set the prediction of the jobs started with it") {
    Predictor predictor(512);
    for (int i = 0; i < 4; ++i)  // started at the fallback, still running
        predictor.observe_running("/src/f" + std::to_string(i) + ".cpp", "g++", JobKind::compile, 512, false);
    predictor.learn("/src/tiny.cpp", compile(30));
    CHECK(predictor.predict("/src/next.cpp", "g++", JobKind::compile).bytes == 512);
    for (int i = 0; i < 4; ++i) predictor.learn("/src/f" + std::to_string(i) + ".cpp", compile(100 + i));
    CHECK(predictor.predict("/src/next.cpp", "g++", JobKind::compile).bytes == 103);
}

TEST_CASE("young running jobs do not pull their peers' guess below what the ended ones say") {
    Predictor predictor(512);
    for (std::uint64_t peak : {300, 310, 320, 330})
        predictor.learn("/src/ended" + std::to_string(peak) + ".cpp", compile(peak));
    CHECK(predictor.predict("/src/next.cpp", "g++", JobKind::compile).bytes == 330);  // 4th of 5, the prior 5th
    // Fifteen jobs just started (-j16), each at its first 5 MB: counted at that, they made
    // the next guess 5 MB (the 15th of 20).
    for (int i = 0; i < 15; ++i)
        predictor.observe_running("/src/young" + std::to_string(i) + ".cpp", "g++", JobKind::compile, 5, false);
    CHECK(predictor.predict("/src/next.cpp", "g++", JobKind::compile).bytes == 330);
    // One that has shown more than that counts at what it has shown.
    predictor.observe_running("/src/young0.cpp", "g++", JobKind::compile, 900, false);
    CHECK(predictor.predict("/src/next.cpp", "g++", JobKind::compile).ceiling_bytes == 900);
}

TEST_CASE("a running job measured on an earlier run counts among its peers at its own peak, however small") {
    Predictor predictor(512);
    for (std::uint64_t peak : {300, 310, 320, 330})
        predictor.learn("/src/ended" + std::to_string(peak) + ".cpp", compile(peak));
    for (int i = 0; i < 3; ++i)
        predictor.observe_running("/src/small" + std::to_string(i) + ".cpp", "g++", JobKind::compile, 40, true);
    // 40, 40, 40, 300, 310, 320, 330 and the prior: the 6th of 8.
    CHECK(predictor.predict("/src/next.cpp", "g++", JobKind::compile).bytes == 320);
}

TEST_CASE("with nothing of its role ended, a running one beyond the fallback raises it") {
    Predictor predictor(512);
    predictor.observe_running("/src/a.cpp", "g++", JobKind::compile, 800, false);
    auto prediction = predictor.predict("/src/b.cpp", "g++", JobKind::compile);
    CHECK(prediction.source == PredictionSource::fallback);
    CHECK(prediction.bytes == 800);
    CHECK(predictor.predict("/build/a.out", "g++", JobKind::link).bytes == 512);
}

TEST_CASE("relearning a key replaces its profile") {
    Predictor predictor(1);
    predictor.learn("/a", compile(10));
    predictor.learn("/a", compile(30));
    CHECK(predictor.predict("/a", "g++", JobKind::compile).bytes == 30);
}

TEST_CASE("percentile is nearest rank") {
    CHECK(percentile({}, 0.75) == 0);
    CHECK(percentile({5}, 0.75) == 5);
    CHECK(percentile({4, 1, 3, 2}, 0.75) == 3);
    CHECK(percentile({4, 1, 3, 2}, 1.0) == 4);
    CHECK(percentile({4, 1, 3, 2}, 0.0) == 1);
}

TEST_CASE("only a job's own profile brings its growth curve, a peer's estimate has none") {
    Predictor predictor(1);
    GrowthCurve curve;
    curve.duration_ms = 100;
    Profile profile = compile(10);
    profile.curve = curve;
    predictor.learn("/a.cc", profile);
    CHECK(predictor.predict("/a.cc", "g++", JobKind::compile).curve == curve);
    CHECK_FALSE(predictor.predict("/b.cc", "g++", JobKind::compile).curve);
}
