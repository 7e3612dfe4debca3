#include "usr.sbin/ktlsctl/xo.h"

namespace ktlsctl {

using nlohmann::json;

bool Xo::parse(std::string_view spec) {
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    std::string_view w = spec.substr(start, comma == std::string_view::npos
                                                ? std::string_view::npos
                                                : comma - start);
    if (w == "json") {
      style = kJson;
    } else if (w == "xml") {
      style = kXml;
    } else if (w == "text") {
      style = kText;
    } else if (w == "pretty") {
      pretty = true;
    } else if (!w.empty()) {
      return false;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return true;
}

namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string scalar(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

void xml(const std::string& key, const json& v, bool pretty, int depth,
         std::string* out) {
  std::string ind = pretty ? std::string(depth * 2, ' ') : "";
  std::string nl = pretty ? "\n" : "";
  if (v.is_array()) {
    for (const json& e : v) xml(key, e, pretty, depth, out);
    return;
  }
  if (v.is_object()) {
    *out += ind + "<" + key + ">" + nl;
    for (const auto& [k, c] : v.items()) xml(k, c, pretty, depth + 1, out);
    *out += ind + "</" + key + ">" + nl;
    return;
  }
  *out += ind + "<" + key + ">" + escape(scalar(v)) + "</" + key + ">" + nl;
}

}  // namespace

std::string Xo::render(const json& doc) const {
  if (style == kXml) {
    std::string out;
    for (const auto& [k, v] : doc.items()) xml(k, v, pretty, 0, &out);
    if (out.empty() || out.back() != '\n') out += "\n";
    return out;
  }
  return doc.dump(pretty ? 2 : -1, ' ', false, json::error_handler_t::replace) + "\n";
}

json hyphenate(const json& j) {
  if (j.is_object()) {
    json o = json::object();
    for (const auto& [k, v] : j.items()) {
      std::string key = k;
      for (char& c : key)
        if (c == '_') c = '-';
      o[key] = hyphenate(v);
    }
    return o;
  }
  if (j.is_array()) {
    json a = json::array();
    for (const json& e : j) a.push_back(hyphenate(e));
    return a;
  }
  return j;
}

}  // namespace ktlsctl
