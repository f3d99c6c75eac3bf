// spdlog configuration shared by long-running subcommands: level and format ("text" for
// people, "json" for log collectors: one object per line with time, level and message).
#pragma once

#include <string>

#include "core/status.h"

namespace v4::apps {

Status configure_logging(const std::string& format, const std::string& level);

}  // namespace v4::apps
