// Beast's HTTP message, parser and I/O headers. GCC 12 with -fsanitize=address reports a false
// -Wmaybe-uninitialized inside basic_parser's boost::optional, which -Werror would turn into a
// build failure; the diagnostic is silenced for these headers only.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
