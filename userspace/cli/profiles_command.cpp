#include "profiles_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include "bytes.h"
#include "runner.h"

namespace memgov {
namespace {

std::string when(std::int64_t unix_seconds) {
    if (unix_seconds <= 0) return "unknown";
    std::time_t time = unix_seconds;
    std::tm local{};
    localtime_r(&time, &local);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M", &local);
    return text;
}

ProfileStore open_store(const ProfilesOptions& options) {
    auto invoker = sudo_invoker();
    ProfileStore store(resolve_profiles_dir(options.profiles_dir), invoker ? invoker->uid : geteuid());
    store.load();
    return store;
}

// Prints the store's warnings; true when there were none.
bool report(ProfileStore& store) {
    auto warnings = store.take_warnings();
    for (const auto& warning : warnings) fmt::print(stderr, "memgov: warning: {}\n", warning);
    return warnings.empty();
}

int save(ProfileStore& store) {
    bool saved = store.save();
    report(store);
    return saved ? 0 : 1;
}

}  // namespace

std::filesystem::path resolve_profiles_dir(const std::optional<std::string>& option) {
    if (option) return *option;
    auto invoker = sudo_invoker();
    return default_profiles_dir(invoker ? std::optional<std::string>(invoker->home) : std::nullopt);
}

int profiles_list(const ProfilesOptions& options) {
    FilesystemIdentity as_user(sudo_invoker());
    auto store = open_store(options);
    report(store);
    std::vector<std::pair<std::string, Profile>> rows(store.profiles().begin(), store.profiles().end());
    std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
        switch (options.sort) {
            case ProfileSort::peak: return a.second.peak_bytes > b.second.peak_bytes;
            case ProfileSort::last_seen: return a.second.last_seen > b.second.last_seen;
            case ProfileSort::key: return a.first < b.first;
        }
        return false;
    });
    if (options.limit && rows.size() > options.limit) rows.resize(options.limit);
    fmt::print("{:>10}  {:>7}  {:<16}  {:<10}  {}\n", "PEAK", "SAMPLES", "LAST SEEN", "TOOL", "KEY");
    for (const auto& [key, profile] : rows)
        fmt::print("{:>10}  {:>7}  {:<16}  {:<10}  {}\n", format_bytes(profile.peak_bytes), profile.samples,
                   when(profile.last_seen), profile.tool, key);
    if (rows.empty()) fmt::print(stderr, "memgov: no profiles yet in {}\n", store.file().string());
    return 0;
}

int profiles_show(const ProfilesOptions& options) {
    FilesystemIdentity as_user(sudo_invoker());
    auto store = open_store(options);
    report(store);
    auto it = store.profiles().find(options.key);
    if (it == store.profiles().end()) {
        fmt::print(stderr, "memgov: no profile for {} in {} (memgov profiles list shows the keys)\n", options.key,
                   store.file().string());
        return 1;
    }
    const Profile& profile = it->second;
    fmt::print("key        {}\npeak       {} ({} bytes)\nsamples    {}\nlast seen  {}\ntool       {}\n", it->first,
               format_bytes(profile.peak_bytes), profile.peak_bytes, profile.samples, when(profile.last_seen),
               profile.tool);
    if (const auto& curve = profile.curve) {
        // The curve as a reader wants it: when a quarter, half, three quarters and all of the
        // peak were reached (the 16ths in between are in the store and `profiles export`).
        constexpr std::size_t quarter = GrowthCurve::steps / 4;
        fmt::print("run time   {} ms\ngrowth     25% by {} ms, 50% by {} ms, 75% by {} ms, 100% by {} ms\n",
                   curve->duration_ms, curve->reach_ms[quarter - 1], curve->reach_ms[2 * quarter - 1],
                   curve->reach_ms[3 * quarter - 1], curve->reach_ms[4 * quarter - 1]);
    }
    return 0;
}

int profiles_forget(const ProfilesOptions& options) {
    FilesystemIdentity as_user(sudo_invoker());
    auto store = open_store(options);
    std::size_t forgotten = 0;
    if (options.older_than) {
        auto age = parse_age(*options.older_than);
        if (!age) {
            fmt::print(stderr, "memgov: --older-than {}: expected an age such as 90s, 30m, 12h, 7d, 2w\n",
                       *options.older_than);
            return 2;
        }
        forgotten = store.forget_older_than(static_cast<std::int64_t>(std::time(nullptr)) - *age);
    } else {
        forgotten = store.forget(options.key);
        if (!forgotten) {
            fmt::print(stderr, "memgov: no profile for {}\n", options.key);
            report(store);
            return 1;
        }
    }
    fmt::print("forgot {} profile{}\n", forgotten, forgotten == 1 ? "" : "s");
    return save(store);
}

int profiles_export(const ProfilesOptions& options) {
    FilesystemIdentity as_user(sudo_invoker());
    auto store = open_store(options);
    report(store);
    std::string text = serialize_profiles(store.profiles());
    if (!options.file || *options.file == "-") {
        fmt::print("{}", text);
        return 0;
    }
    std::ofstream out(*options.file, std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
        fmt::print(stderr, "memgov: cannot write {}\n", *options.file);
        return 1;
    }
    return 0;
}

int profiles_import(const ProfilesOptions& options) {
    FilesystemIdentity as_user(sudo_invoker());
    std::ifstream in(options.file.value_or("-") == "-" ? "/dev/stdin" : *options.file);
    if (!in) {
        fmt::print(stderr, "memgov: cannot read {}\n", *options.file);
        return 1;
    }
    std::stringstream text;
    text << in.rdbuf();
    std::string error;
    auto incoming = parse_profiles(text.str(), error);
    if (!incoming) {
        fmt::print(stderr, "memgov: {} is not a memgov profile export: {}\n", options.file.value_or("stdin"), error);
        return 1;
    }
    auto store = open_store(options);
    std::size_t taken = store.merge_in(*incoming);
    fmt::print("imported {} of {} profiles (the others were older than what is known here)\n", taken, incoming->size());
    return save(store);
}

}  // namespace memgov
