// Python-compatible JSON serialisation for the chat renderer (spec §5.8).
#include "model/chat/chat_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace v4 {
namespace {

void dump(const OrderedJson& value, std::string& out) {
  switch (value.type()) {
    case OrderedJson::value_t::null:
      out += "null";
      break;
    case OrderedJson::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      break;
    case OrderedJson::value_t::number_integer:
      out += std::to_string(value.get<int64_t>());
      break;
    case OrderedJson::value_t::number_unsigned:
      out += std::to_string(value.get<uint64_t>());
      break;
    case OrderedJson::value_t::number_float: {
      const double v = value.get<double>();
      // json.dumps writes the JavaScript names for the non-finite values.
      if (std::isnan(v)) {
        out += "NaN";
      } else if (std::isinf(v)) {
        out += v > 0 ? "Infinity" : "-Infinity";
      } else {
        out += python_float_repr(v);
      }
      break;
    }
    case OrderedJson::value_t::string:
      append_python_json_string(out, value.get_ref<const std::string&>());
      break;
    case OrderedJson::value_t::array: {
      out += '[';
      bool first = true;
      for (const OrderedJson& element : value) {
        if (!first) out += ", ";
        first = false;
        dump(element, out);
      }
      out += ']';
      break;
    }
    case OrderedJson::value_t::object: {
      out += '{';
      bool first = true;
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        append_python_json_string(out, it.key());
        out += ": ";
        dump(it.value(), out);
      }
      out += '}';
      break;
    }
    default:  // binary / discarded never come out of the parser
      out += "null";
      break;
  }
}

}  // namespace

void append_python_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    const auto byte = static_cast<uint8_t>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (byte < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's layout: positional when the decimal exponent is
  // in [-4, 16), scientific otherwise, always with a ".0" or an exponent.
  char buffer[64];
  auto [end, ec] =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string scientific(buffer, end);
  const size_t e = scientific.find('e');
  std::string mantissa = scientific.substr(0, e);
  const int exponent = std::atoi(scientific.c_str() + e + 1);
  std::string sign;
  if (!mantissa.empty() && mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  if (exponent >= -4 && exponent < 16) {
    std::string out;
    if (exponent < 0) {
      out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out = digits + std::string(static_cast<size_t>(exponent + 1 - digits.size()), '0') + ".0";
    } else {
      out = digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
    }
    return sign + out;
  }
  std::string out = digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exponent_text[16];
  std::snprintf(exponent_text, sizeof(exponent_text), "e%c%02d", exponent < 0 ? '-' : '+',
                std::abs(exponent));
  return sign + out + exponent_text;
}

std::string python_json_dumps(const OrderedJson& value) {
  std::string out;
  dump(value, out);
  return out;
}

}  // namespace v4
