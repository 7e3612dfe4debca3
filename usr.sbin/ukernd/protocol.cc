// The control-request parser and reply builders (docs/ukernd-protocol.md).
#include "usr.sbin/ukernd/protocol.h"

#include <cerrno>
#include <cmath>
#include <cstring>

namespace ukernd {

namespace {

struct OpName {
  Op op;
  const char* name;
  bool changes_state;
};

constexpr OpName kOps[] = {
    {Op::kHello, "hello", false},
    {Op::kLab, "lab", false},
    {Op::kKernels, "kernels", false},
    {Op::kSysctlList, "sysctl.list", false},
    {Op::kSysctlSet, "sysctl.set", true},
    {Op::kDmesg, "dmesg", false},
    {Op::kKldstat, "kldstat", false},
    {Op::kKldload, "kldload", true},
    {Op::kKldunload, "kldunload", true},
    {Op::kStats, "stats", false},
    {Op::kSessions, "sessions", false},
    {Op::kMode, "mode", true},
    {Op::kIfconfig, "ifconfig", true},  // read-only when it has no args
    // Capturing shows other users' traffic: privileged, as bpf(4) is.
    {Op::kPcap, "pcap", true},
    {Op::kServices, "services", false},
    {Op::kConnOpen, "conn.open", true},
    {Op::kConnSend, "conn.send", true},
    {Op::kConnClose, "conn.close", true},
    {Op::kConnList, "conn.list", false},
    {Op::kNetstat, "netstat", false},
};

// Deepest nesting accepted. nlohmann's parser is iterative, but values are
// destroyed recursively in some versions; a bound keeps a hostile
// "[[[[..." from reaching either.
constexpr int kMaxDepth = 32;

bool too_deep(std::string_view s) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        i++;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return false;
}

// Names of kernels, modules, interfaces and sessions: printable, no spaces
// or control characters, so they can be echoed into messages safely.
bool valid_token(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (unsigned char c : s) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

class FieldReader {
 public:
  FieldReader(const json& obj, RequestError* err) : obj_(obj), err_(err) {}

  // Optional string field; false (with *err set) if present but not a
  // string, or too long.
  bool str(const char* key, std::string* out, bool required) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) {
      if (required) return fail(EINVAL, std::string("missing \"") + key + "\"");
      return true;
    }
    if (it->is_number()) {  // "value": 1 is as good as "value": "1"
      *out = it->dump();
      return true;
    }
    if (!it->is_string())
      return fail(EINVAL, std::string("\"") + key + "\" must be a string");
    const std::string& s = it->get_ref<const std::string&>();
    if (s.size() > kMaxFieldBytes)
      return fail(E2BIG, std::string("\"") + key + "\" is too long");
    *out = s;
    return true;
  }

  bool token(const char* key, std::string* out, bool required) {
    if (!str(key, out, required)) return false;
    if (!out->empty() || required) {
      if (!valid_token(*out))
        return fail(EINVAL, std::string("\"") + key + "\" is not a valid name");
    }
    return true;
  }

  bool integer(const char* key, int64_t* out, int64_t lo, int64_t hi) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return true;
    if (!it->is_number_integer())
      return fail(EINVAL, std::string("\"") + key + "\" must be an integer");
    int64_t v = it->is_number_unsigned()
                    ? (it->get<uint64_t>() > static_cast<uint64_t>(hi)
                           ? hi + 1
                           : static_cast<int64_t>(it->get<uint64_t>()))
                    : it->get<int64_t>();
    if (v < lo || v > hi)
      return fail(ERANGE, std::string("\"") + key + "\" is out of range");
    *out = v;
    return true;
  }

  bool number(const char* key, double* out, double lo, double hi) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return true;
    if (!it->is_number())
      return fail(EINVAL, std::string("\"") + key + "\" must be a number");
    double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi)
      return fail(ERANGE, std::string("\"") + key + "\" is out of range");
    *out = v;
    return true;
  }

  bool strings(const char* key, std::vector<std::string>* out) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return true;
    if (!it->is_array())
      return fail(EINVAL, std::string("\"") + key + "\" must be an array of strings");
    if (it->size() > kMaxArgs)
      return fail(E2BIG, std::string("\"") + key + "\" has too many elements");
    for (const json& e : *it) {
      if (!e.is_string())
        return fail(EINVAL, std::string("\"") + key + "\" must be an array of strings");
      const std::string& s = e.get_ref<const std::string&>();
      if (s.size() > kMaxFieldBytes)
        return fail(E2BIG, std::string("\"") + key + "\" has an element too long");
      out->push_back(s);
    }
    return true;
  }

  bool fail(int error, std::string msg) {
    err_->error = error;
    err_->message = std::move(msg);
    return false;
  }

 private:
  const json& obj_;
  RequestError* err_;
};

}  // namespace

const char* op_name(Op op) {
  for (const OpName& o : kOps)
    if (o.op == op) return o.name;
  return "?";
}

bool op_from_name(std::string_view s, Op* op) {
  for (const OpName& o : kOps) {
    if (s == o.name) {
      *op = o.op;
      return true;
    }
  }
  return false;
}

bool op_changes_state(Op op) {
  for (const OpName& o : kOps)
    if (o.op == op) return o.changes_state;
  return true;
}

bool parse_request(std::string_view line, Request* req, RequestError* err) {
  *req = Request();
  *err = RequestError();
  if (line.size() > kMaxRequestBytes) {
    err->error = E2BIG;
    err->message = "request longer than " + std::to_string(kMaxRequestBytes) + " bytes";
    return false;
  }
  if (too_deep(line)) {
    err->error = EINVAL;
    err->message = "request nested deeper than " + std::to_string(kMaxDepth) + " levels";
    return false;
  }
  json j = json::parse(line.begin(), line.end(), nullptr,
                       /*allow_exceptions=*/false, /*ignore_comments=*/false);
  if (j.is_discarded()) {
    err->error = EINVAL;
    err->message = "malformed JSON";
    return false;
  }
  if (!j.is_object()) {
    err->error = EINVAL;
    err->message = "a request must be a JSON object";
    return false;
  }
  auto id = j.find("id");
  if (id != j.end()) {
    if (id->is_structured()) {
      err->error = EINVAL;
      err->message = "\"id\" must be a number, string or null";
      return false;
    }
    if (id->is_string() && id->get_ref<const std::string&>().size() > 256) {
      err->error = E2BIG;
      err->message = "\"id\" is too long";
      return false;
    }
    req->id = *id;
    err->id = *id;
  }
  auto v = j.find("v");
  if (v == j.end()) {
    err->error = EPROTO;
    err->message = "missing \"v\" (protocol version; this daemon speaks " +
                   std::to_string(kProtocolVersion) + ")";
    return false;
  }
  if (!v->is_number_integer() || v->get<int64_t>() < 1) {
    err->error = EPROTO;
    err->message = "\"v\" must be a positive integer";
    return false;
  }
  if (v->get<int64_t>() > kProtocolVersion) {
    err->error = EPROTONOSUPPORT;
    err->message = "protocol version " + std::to_string(v->get<int64_t>()) +
                   " is not supported (this daemon speaks " +
                   std::to_string(kProtocolVersion) + ")";
    return false;
  }
  req->version = static_cast<int>(v->get<int64_t>());
  auto op = j.find("op");
  if (op == j.end() || !op->is_string()) {
    err->error = EINVAL;
    err->message = "missing \"op\"";
    return false;
  }
  const std::string& opname = op->get_ref<const std::string&>();
  if (!op_from_name(opname, &req->op)) {
    err->error = EOPNOTSUPP;
    err->message = "unknown op '" + opname.substr(0, 64) + "'";
    return false;
  }

  FieldReader r(j, err);
  if (!r.token("kernel", &req->kernel, false)) return false;
  switch (req->op) {
    case Op::kHello:
    case Op::kLab:
    case Op::kKernels:
    case Op::kDmesg:
    case Op::kKldstat:
    case Op::kStats:
    case Op::kSessions:
    case Op::kServices:
    case Op::kConnList:
      return true;
    case Op::kConnOpen:
      if (!r.token("peer", &req->peer, false)) return false;
      if (!r.token("cipher", &req->cipher, false)) return false;
      if (!r.token("version", &req->tls_version, false)) return false;
      return r.token("personality", &req->personality, false);
    case Op::kConnSend:
      if (!r.integer("conn", &req->conn, 1, INT32_MAX)) return false;
      if (req->conn == 0) return r.fail(EINVAL, "missing \"conn\"");
      return r.integer("bytes", &req->bytes, 0, int64_t{1} << 40);
    case Op::kConnClose:
      if (!r.integer("conn", &req->conn, 1, INT32_MAX)) return false;
      if (req->conn == 0) return r.fail(EINVAL, "missing \"conn\"");
      return true;
    case Op::kSysctlList:
      return r.str("oid", &req->name, false);
    case Op::kSysctlSet:
      if (!r.str("oid", &req->name, true)) return false;
      if (req->name.empty()) return r.fail(EINVAL, "\"oid\" is empty");
      return r.str("value", &req->value, true);
    case Op::kKldload:
    case Op::kKldunload:
      return r.token("module", &req->name, true);
    case Op::kMode:
      if (!r.token("session", &req->name, true)) return false;
      if (!r.token("mode", &req->value, true)) return false;
      if (req->value != "sw" && req->value != "ifnet" && req->value != "toe")
        return r.fail(EINVAL, "\"mode\" must be sw, ifnet or toe");
      return true;
    case Op::kIfconfig:
      if (!r.token("interface", &req->name, false)) return false;
      if (!r.strings("args", &req->args)) return false;
      if (req->name.empty() && !req->args.empty())
        return r.fail(EINVAL, "\"args\" needs an \"interface\"");
      return true;
    case Op::kNetstat:
      return r.token("interface", &req->name, false);
    case Op::kPcap:
      if (!r.token("interface", &req->name, true)) return false;
      if (!r.integer("count", &req->count, 0, INT64_MAX)) return false;
      return r.number("seconds", &req->seconds, 0, 86400.0 * 365);
  }
  return r.fail(EOPNOTSUPP, "unknown op");
}

json make_reply(const json& id, std::string_view kernel, json result) {
  json j = {{"v", kProtocolVersion}, {"id", id}, {"ok", true}};
  if (!kernel.empty()) j["kernel"] = std::string(kernel);
  j["result"] = std::move(result);
  return j;
}

json make_error(const json& id, int error, std::string_view message) {
  return {{"v", kProtocolVersion},
          {"id", id},
          {"ok", false},
          {"error",
           {{"errno", error},
            {"code", errno_name(error)},
            {"message", std::string(message)}}}};
}

json make_event(const json& id, std::string_view event, json data) {
  return {{"v", kProtocolVersion},
          {"id", id},
          {"event", std::string(event)},
          {"data", std::move(data)}};
}

std::string to_line(const json& j) {
  // Replace bad UTF-8 (from kernel strings or echoed input) instead of
  // throwing: a reply must always be sendable.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

struct ErrnoName {
  int e;
  const char* name;
};

constexpr ErrnoName kErrnos[] = {
    {EPERM, "EPERM"},       {ENOENT, "ENOENT"},
    {ESRCH, "ESRCH"},       {EINTR, "EINTR"},
    {EIO, "EIO"},           {E2BIG, "E2BIG"},
    {EBADF, "EBADF"},       {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},     {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},       {EEXIST, "EEXIST"},
    {ENODEV, "ENODEV"},     {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},     {EINVAL, "EINVAL"},
    {ENOSPC, "ENOSPC"},     {ERANGE, "ERANGE"},
    {EAGAIN, "EAGAIN"},     {EALREADY, "EALREADY"},
    {ENOTSOCK, "ENOTSOCK"}, {EMSGSIZE, "EMSGSIZE"},
    {EOPNOTSUPP, "EOPNOTSUPP"},
    {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
    {EADDRINUSE, "EADDRINUSE"},
    {ENXIO, "ENXIO"},       {ENETDOWN, "ENETDOWN"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ENOSYS, "ENOSYS"},     {EPROTO, "EPROTO"},
    {EBADMSG, "EBADMSG"},   {ENOTCONN, "ENOTCONN"},
    {EMFILE, "EMFILE"},     {ESHUTDOWN, "ESHUTDOWN"},
    {ECONNRESET, "ECONNRESET"}, {EPIPE, "EPIPE"},
    {EHOSTUNREACH, "EHOSTUNREACH"}, {ENETUNREACH, "ENETUNREACH"},
    {EHOSTDOWN, "EHOSTDOWN"},
};

}  // namespace

std::string errno_name(int error) {
  for (const ErrnoName& n : kErrnos)
    if (n.e == error) return n.name;
  return "E" + std::to_string(error);
}

int errno_from_name(std::string_view name) {
  for (const ErrnoName& n : kErrnos)
    if (name == n.name) return n.e;
  return 0;
}

}  // namespace ukernd
