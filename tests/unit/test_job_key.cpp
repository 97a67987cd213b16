#include <doctest/doctest.h>

#include "job_key.h"

using memgov::job_key;
using memgov::JobKind;

TEST_CASE("a compile is keyed on its absolute source path") {
    auto key = job_key({"g++", "-O2", "-c", "src/main.cpp", "-o", "obj/main.o"}, "/home/u/proj");
    CHECK(key.kind == JobKind::compile);
    CHECK(key.key == "/home/u/proj/src/main.cpp");
}

TEST_CASE("option values are not mistaken for sources") {
    auto key = job_key({"gcc", "-include", "pre.h", "-MF", "dep.c", "-o", "x.c", "-c", "../a.c"}, "/p/build");
    CHECK(key.key == "/p/a.c");
}

TEST_CASE("several sources key on all of them, sorted and unique") {
    auto key = job_key({"cc", "b.c", "a.c", "b.c", "-o", "prog"}, "/w");
    CHECK(key.kind == JobKind::compile);
    CHECK(key.key == "/w/a.c, /w/b.c");
}

TEST_CASE("cc1plus under any driver keys on the source, not its temporary output") {
    auto key = job_key({"/usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus", "-quiet", "-I", "inc", "src/x.cc", "-quiet",
                        "-dumpbase", "x.cc", "-dumpbase-ext", ".cc", "-O2", "-o", "/tmp/ccAbc.s"},
                       "/p");
    CHECK(key.key == "/p/src/x.cc");
}

TEST_CASE("a link is keyed on its output") {
    CHECK(job_key({"g++", "a.o", "b.o", "-o", "bin/app"}, "/p").key == "/p/bin/app");
    CHECK(job_key({"g++", "a.o", "b.o", "-obin/app"}, "/p").key == "/p/bin/app");
    CHECK(job_key({"/usr/bin/ld", "a.o"}, "/p").key == "/p/a.out");
    auto versioned = job_key({"x86_64-linux-gnu-g++-12", "a.o", "-o", "app"}, "/p");
    CHECK(versioned.kind == JobKind::link);
    CHECK(versioned.key == "/p/app");
}

TEST_CASE("rustc keys on its crate root") {
    auto key = job_key({"rustc", "--crate-name", "foo", "--edition=2021", "src/lib.rs", "--crate-type", "lib",
                        "--out-dir", "/t/deps", "-C", "opt-level=3"},
                       "/r");
    CHECK(key.key == "/r/src/lib.rs");
}

TEST_CASE("paths are normalised lexically and absolute ones kept") {
    CHECK(job_key({"gcc", "-c", "./x/../y//z.c"}, "/a/b/").key == "/a/b/y/z.c");
    CHECK(job_key({"gcc", "-c", "/abs/p.c"}, "/ignored").key == "/abs/p.c");
    CHECK(job_key({"gcc", "-c", "../../../../up.c"}, "/a").key == "/up.c");
}

TEST_CASE("odd argv never breaks keying") {
    CHECK(job_key({}, "/").kind == JobKind::other);
    CHECK(job_key({"gcc", "-o"}, "/p").key == "/p/a.out");
    CHECK(job_key({"gcc", "-c", "dir with space/f.c"}, "/p").key == "/p/dir with space/f.c");
    CHECK(job_key({"gcc", "-c", "new\nline.c"}, "/p").key == "/p/new\nline.c");
    CHECK(job_key({"gcc", "-c", ".c"}, "/p").key == "/p/a.out");  // a dotfile is no source
    CHECK(job_key({"javac", "-d", "out", "-o", "x.jar"}, "/p").key == "javac -o /p/x.jar");
    CHECK(job_key({"mytool", "--flag"}, "/p").key == "mytool --flag");
    CHECK(job_key({"gcc", "@args.rsp"}, "/p").kind == JobKind::link);
    CHECK(job_key({"///"}, "/").key == "///");  // found by fuzz_job_key: keys are never empty
    CHECK(job_key({""}, "/").key == "(unnamed program)");
}

TEST_CASE("-MD and -MMD take no value in the driver") {
    CHECK(job_key({"gcc", "-MMD", "src/foo.c", "-c", "-o", "foo.o"}, "/p").key == "/p/src/foo.c");
    CHECK(job_key({"gcc", "-MD", "src/foo.c", "-c"}, "/p").key == "/p/src/foo.c");
    CHECK(job_key({"cc1", "-MMD", "foo.d", "src/foo.c"}, "/p").key == "/p/src/foo.c");
}

TEST_CASE("roles: compiles, links and LTO links are told apart") {
    CHECK(job_key({"g++", "-O3", "-c", "a.cpp", "-o", "a.o"}, "/p").kind == JobKind::compile);
    CHECK(job_key({"g++", "-flto", "-c", "a.cpp"}, "/p").kind == JobKind::compile);  // LTO's compile step
    CHECK(job_key({"g++", "a.o", "b.o", "-o", "app"}, "/p").kind == JobKind::link);
    CHECK(job_key({"g++", "-flto=auto", "a.o", "b.o", "-o", "app"}, "/p").kind == JobKind::lto);
    CHECK(job_key({"g++", "-fno-lto", "a.o", "-o", "app"}, "/p").kind == JobKind::link);
    CHECK(job_key({"/usr/bin/ld.lld", "-plugin-opt=O2", "a.o", "-o", "app"}, "/p").kind == JobKind::link);
    auto lto1 = job_key({"/usr/lib/gcc/x86_64-linux-gnu/12/lto1", "-fltrans", "x.ltrans.o", "-o", "x.s"}, "/p");
    CHECK(lto1.kind == JobKind::lto);
    for (JobKind kind : {JobKind::compile, JobKind::link, JobKind::lto, JobKind::other})
        CHECK(memgov::kind_from_name(memgov::kind_name(kind)) == kind);
    CHECK_FALSE(memgov::kind_from_name("jit"));
}

TEST_CASE("a compile of its standard input (an icecream worker) is keyed by what its pipe names, else pending") {
    std::vector<std::string> icecream_worker{"/usr/bin/g++",      "-x", "c++", "-O2", "-c", "-fpreprocessed", "-", "-o",
                                             "icecc-1_19a80409.o"};
    std::string asked_for;
    auto pipe_with = [&](std::string text) {
        return [&asked_for, text](const std::string& path) {
            asked_for = path;
            return text;
        };
    };
    auto named = job_key(icecream_worker, "/tmp/env/tmp", pipe_with("# 0 \"src/util.cpp\"\n# 0 \"<built-in>\"\n"));
    CHECK(asked_for == "-");  // the job's standard input, which the caller opens
    CHECK(named.key == "src/util.cpp");
    CHECK(named.kind == JobKind::compile);
    CHECK_FALSE(named.pending);
    // Nothing there yet: a compile keyed by how it compiles, never by its temporary output.
    auto pending = job_key(icecream_worker, "/tmp/env/tmp", pipe_with(""));
    CHECK(pending.pending);
    CHECK(pending.kind == JobKind::compile);
    CHECK(pending.key == "g++ -x c++ -O2 -c -fpreprocessed -");
    CHECK(job_key(icecream_worker, "/tmp").pending);  // no reader at all
    // A pipe with a plain source (a configure check) names nothing: keyed as it compiles, now,
    // and a compile without -fpreprocessed is not even asked.
    auto plain = job_key(icecream_worker, "/tmp", pipe_with("int main() { return 0; }\n"));
    CHECK_FALSE(plain.pending);
    CHECK(plain.key == pending.key);
    asked_for.clear();
    auto probe = job_key({"cc", "-c", "-x", "c", "-", "-oconftest.o"}, "/tmp", pipe_with(""));
    CHECK(asked_for.empty());
    CHECK_FALSE(probe.pending);
    CHECK(probe.key == "cc -c -x c -");  // -o and its name, joined or not, left out
    // Without -c or -S, "-" is not a compile's input (a link reading a list, a tool's argument).
    CHECK_FALSE(job_key({"g++", "-", "-o", "app"}, "/p").pending);
    CHECK(job_key({"g++", "-", "-o", "app"}, "/p").kind == JobKind::link);
}

TEST_CASE("a preprocessed file is keyed by the source its line markers name") {
    auto head = [](std::string text) { return [text](const std::string&) { return text; }; };
    std::vector<std::string> distcc_worker{"g++", "-O2", "-c", "/tmp/distccd_19c88314.ii", "-o", "/tmp/distccd_a.o"};
    // gcc -E without -g: the source as the client named it.
    CHECK(job_key(distcc_worker, "/tmp", head("# 0 \"src/util.cpp\"\n# 0 \"<built-in>\"\n")).key == "src/util.cpp");
    // With -g, gcc adds the client's working directory ("//" ends it): an absolute key.
    CHECK(job_key(distcc_worker, "/tmp", head("# 0 \"src/util.cpp\"\n# 1 \"/home/u/p//\"\n# 0 \"<built-in>\"\n")).key ==
          "/home/u/p/src/util.cpp");
    CHECK(job_key(distcc_worker, "/tmp", head("# 1 \"/abs/x/../a.c\"\n")).key == "/abs/a.c");
    // clang writes `# 1 "file"`; escapes are cpp's.
    CHECK(job_key(distcc_worker, "/tmp", head("# 1 \"dir\\\\a \\\"q\\\".c\"\n")).key == "dir\\a \"q\".c");
    CHECK(job_key(distcc_worker, "/tmp", head("# 1 \"oct\\141l.c\"\n")).key == "octal.c");
    // Nothing usable: the file's own name, as for any source.
    for (const char* unusable : {"", "int x;\n", "# 0 \"<stdin>\"\n", "# 0 \"cut off\n", "#line 1 \"a.c\"",
                                 "# x \"a.c\"\n", "# 1 \"nul\\000.c\"\n", "# 0 \"\"\n"}) {
        CAPTURE(unusable);
        CHECK(job_key(distcc_worker, "/tmp", head(unusable)).key == "/tmp/distccd_19c88314.ii");
    }
    // Only a compile of one preprocessed file asks for its head.
    bool asked = false;
    auto spy = [&](const std::string&) {
        asked = true;
        return std::string("# 0 \"src/a.c\"\n");
    };
    CHECK(job_key({"gcc", "-c", "a.c", "-o", "a.o"}, "/src", spy).key == "/src/a.c");
    CHECK(job_key({"gcc", "-c", "a.i", "b.i"}, "/src", spy).key == "/src/a.i, /src/b.i");
    CHECK_FALSE(asked);
    CHECK(job_key({"gcc", "-c", "x.i"}, "/src", spy).key == "src/a.c");
    CHECK(asked);
}
