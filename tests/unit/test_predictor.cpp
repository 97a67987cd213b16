#include <doctest/doctest.h>

#include "predictor.h"

using namespace memgov;

TEST_CASE("a known key is predicted from its profile") {
    Predictor predictor(512);
    predictor.learn("/src/a.cc", {.peak_bytes = 700, .tool = "g++"});
    auto prediction = predictor.predict("/src/a.cc", "g++");
    CHECK(prediction.bytes == 700);
    CHECK(prediction.source == PredictionSource::profile);
}

TEST_CASE("an unknown key gets the 75th percentile of its tool, else of all jobs") {
    Predictor predictor(512);
    CHECK(predictor.predict("/x.c", "gcc").source == PredictionSource::fallback);
    CHECK(predictor.predict("/x.c", "gcc").bytes == 512);
    for (std::uint64_t peak : {100, 200, 300, 400}) predictor.learn("/k" + std::to_string(peak), {.peak_bytes = peak, .tool = "g++"});
    predictor.learn("/link", {.peak_bytes = 5000, .tool = "ld"});
    auto same_tool = predictor.predict("/new.cc", "g++");
    CHECK(same_tool.source == PredictionSource::same_tool);
    CHECK(same_tool.bytes == 300);
    auto any = predictor.predict("/new.rs", "rustc");
    CHECK(any.source == PredictionSource::any_tool);
    CHECK(any.bytes == 400);
}

TEST_CASE("relearning a key replaces its profile") {
    Predictor predictor(1);
    predictor.learn("/a", {.peak_bytes = 10, .tool = "g++"});
    predictor.learn("/a", {.peak_bytes = 30, .tool = "g++"});
    CHECK(predictor.predict("/a", "g++").bytes == 30);
}

TEST_CASE("percentile is nearest rank") {
    CHECK(percentile({}, 0.75) == 0);
    CHECK(percentile({5}, 0.75) == 5);
    CHECK(percentile({4, 1, 3, 2}, 0.75) == 3);
    CHECK(percentile({4, 1, 3, 2}, 1.0) == 4);
    CHECK(percentile({4, 1, 3, 2}, 0.0) == 1);
}

TEST_CASE("only a job's own profile brings its growth curve; a peer's estimate has none") {
    Predictor predictor(1);
    GrowthCurve curve;
    curve.duration_ms = 100;
    predictor.learn("/a.cc", {.peak_bytes = 10, .tool = "g++", .curve = curve});
    CHECK(predictor.predict("/a.cc", "g++").curve == curve);
    CHECK_FALSE(predictor.predict("/b.cc", "g++").curve);
}
