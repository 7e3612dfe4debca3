#include "usr.sbin/ukhttpd/docroot_gen.h"

#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace ukhttpd {
namespace {

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

std::string HumanSize(uint64_t n) {
  if (n >= (1ULL << 20) && n % (1ULL << 20) == 0) return std::to_string(n >> 20) + " MiB";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + " KiB";
  return std::to_string(n) + " bytes";
}

constexpr size_t kChunk = 1 << 20;

}  // namespace

std::vector<GeneratedFile> DefaultFiles() {
  return {{"1k.bin", 1024}, {"1m.bin", 1 << 20}, {"64m.bin", 64ULL << 20}};
}

void PatternFill(std::string_view name, uint64_t off, uint8_t* buf, size_t len) {
  const uint64_t seed = Fnv1a64(name);
  while (len > 0) {
    uint64_t word = off / 8;
    size_t in = static_cast<size_t>(off % 8);
    uint64_t v = SplitMix64(seed + word);
    uint8_t bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(v >> (8 * i));
    size_t n = std::min(len, 8 - in);
    std::memcpy(buf, bytes + in, n);
    buf += n;
    off += n;
    len -= n;
  }
}

std::string PatternSha256(std::string_view name, uint64_t size) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<uint8_t> buf(kChunk);
  for (uint64_t off = 0; off < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    PatternFill(name, off, buf.data(), n);
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    off += n;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &mdlen);
  return Hex(md, mdlen);
}

std::string IndexHtml(const std::vector<GeneratedFile>& files,
                      const std::vector<std::string>& sha256) {
  std::string h =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ukhttpd</title></head>\n"
      "<body>\n<h1>ukhttpd</h1>\n"
      "<p>Files of deterministic content, served over TLS; their bodies leave through "
      "kernel TLS (sendfile) when it is active.</p>\n<table>\n"
      "<tr><th>file</th><th>size</th><th>SHA-256</th></tr>\n";
  for (size_t i = 0; i < files.size(); ++i) {
    h += "<tr><td><a href=\"/" + files[i].name + "\">" + files[i].name + "</a></td><td>" +
         HumanSize(files[i].size) + "</td><td><code>" +
         (i < sha256.size() ? sha256[i] : std::string()) + "</code></td></tr>\n";
  }
  h += "</table>\n</body></html>\n";
  return h;
}

int WriteDocroot(DocSink& sink, const std::vector<GeneratedFile>& files,
                 std::vector<std::string>* sha256_out) {
  std::vector<std::string> sums;
  std::vector<uint8_t> buf(kChunk);
  for (const GeneratedFile& f : files) {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    if (int err = sink.begin_file(f.name, f.size)) return err;
    for (uint64_t off = 0; off < f.size;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, f.size - off));
      PatternFill(f.name, off, buf.data(), n);
      EVP_DigestUpdate(ctx.get(), buf.data(), n);
      if (int err = sink.append(buf.data(), n)) return err;
      off += n;
    }
    if (int err = sink.end_file()) return err;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx.get(), md, &mdlen);
    sums.push_back(Hex(md, mdlen));
  }
  std::string index = IndexHtml(files, sums);
  if (int err = sink.begin_file("index.html", index.size())) return err;
  if (int err = sink.append(index.data(), index.size())) return err;
  if (int err = sink.end_file()) return err;
  if (sha256_out) *sha256_out = std::move(sums);
  return 0;
}

}  // namespace ukhttpd
