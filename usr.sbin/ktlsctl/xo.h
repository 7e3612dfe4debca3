// Output styles in libxo's convention: --libxo json|xml|text[,pretty].
// Read commands build one JSON document whose keys are stable and
// hyphenated; it is printed as JSON, or as XML (arrays become repeated
// elements named by their key), or the command prints its own text.
#ifndef UKTLS_USR_SBIN_KTLSCTL_XO_H_
#define UKTLS_USR_SBIN_KTLSCTL_XO_H_

#include <string>
#include <string_view>

#include "nlohmann/json.hpp"

namespace ktlsctl {

struct Xo {
  enum Style { kText, kJson, kXml };
  Style style = kText;
  bool pretty = false;

  // Parses "json", "xml,pretty", "text"... False on an unknown word.
  bool parse(std::string_view spec);
  bool text() const { return style == kText; }
  // The document as one string ending in a newline.
  std::string render(const nlohmann::json& doc) const;
};

// Returns |j| with '_' in every object key replaced by '-'.
nlohmann::json hyphenate(const nlohmann::json& j);

}  // namespace ktlsctl

#endif  // UKTLS_USR_SBIN_KTLSCTL_XO_H_
