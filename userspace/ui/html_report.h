// `memgov report FILE --html PAGE`: one self-contained page (no script, nothing fetched) that
// shows the build like cargo --timings: a timeline of its jobs coloured by state (waiting at
// the gate, running, stopped by the net, OOM-killed) over a stacked chart of their memory,
// with the limit and the build's measured total. Pure: a timeline in, HTML out.
#pragma once

#include <string>

#include "build_analysis.h"

namespace memgov {

// `text`: the report's words, shown above the pictures.
std::string html_report(const BuildTimeline& timeline, const std::string& text);

}  // namespace memgov
