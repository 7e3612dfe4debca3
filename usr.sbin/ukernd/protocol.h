// The ukernd control protocol: JSON lines over a unix socket. One request per
// line, one reply line per request (in order), except for streaming requests
// which send "event" lines before their reply. docs/ukernd-protocol.md is the
// specification; this header is its parser and reply builders, shared by
// ukernd (server side) and ktlsctl (client side).
//
// The parser reads untrusted bytes: it never throws, never aborts, bounds
// every field it keeps, and reports what was wrong in words.
#ifndef UKTLS_USR_SBIN_UKERND_PROTOCOL_H_
#define UKTLS_USR_SBIN_UKERND_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

namespace ukernd {

using json = nlohmann::json;

// Version 1 of the protocol. A request carries "v"; a daemon answers
// requests of any version up to its own and refuses newer ones.
inline constexpr int kProtocolVersion = 1;
// Longest request line accepted; longer lines get an error and the
// connection is closed (the stream cannot be resynchronised cheaply).
inline constexpr size_t kMaxRequestBytes = 64 * 1024;
// Longest string field kept (oid names, values, interface names...).
inline constexpr size_t kMaxFieldBytes = 4096;
// Most ifconfig arguments in one request.
inline constexpr size_t kMaxArgs = 64;

enum class Op {
  kHello,       // daemon identity and protocol version
  kLab,         // the lab model (kernels, NICs, wires, services)
  kKernels,     // running kernels
  kSysctlList,  // values of one oid or every leaf below a node
  kSysctlSet,   // sysctl name=value
  kDmesg,       // message buffer
  kKldstat,     // loaded modules
  kKldload,     // load a module
  kKldunload,   // unload a module
  kStats,       // KTLS statistics, grouped
  kSessions,    // KTLS sessions
  kMode,        // switch a session's TX mode
  kIfconfig,    // show or configure interfaces
  kPcap,        // capture on an interface (streams "packet" events)
  kServices,    // the lab's services ([I])
  kConnOpen,    // open a KTLS test connection between two kernels
  kConnSend,    // send verified bytes through one
  kConnClose,   // close one
  kConnList,    // the open test connections
  kNetstat,     // interface statistics (netstat -i)
};

// Kernel selector value meaning every kernel (sessions -k all).
inline constexpr std::string_view kAllKernels = "all";

struct Request {
  json id;             // echoed in the reply; null when absent
  int version = kProtocolVersion;
  Op op = Op::kHello;
  std::string kernel;  // "" = the lab's default kernel
  std::string name;    // oid, module, interface or session id
  std::string value;   // sysctl value, mode word, pcap file name
  std::vector<std::string> args;  // ifconfig arguments
  int64_t count = 0;   // pcap packet limit (0 = none)
  double seconds = 0;  // pcap duration (0 = none)
  // conn.*: the peer kernel, suite, TLS version, personality, connection
  // id and byte count.
  std::string peer;
  std::string cipher;
  std::string tls_version;
  std::string personality;
  int64_t conn = 0;
  int64_t bytes = 0;
};

// What went wrong with a request: an errno and a sentence for people.
struct RequestError {
  int error = 0;
  std::string message;
  json id;  // the request's id if it could be read, else null
};

// Parses one request line (without its newline). Returns true and fills
// *req, or false and fills *err. Never throws.
bool parse_request(std::string_view line, Request* req, RequestError* err);

// The wire name of an op ("sysctl.list") and back.
const char* op_name(Op op);
bool op_from_name(std::string_view s, Op* op);

// True for requests that change kernel state; ukernd refuses them to
// peers whose uid differs from its own (root excepted).
bool op_changes_state(Op op);

// Reply builders. |kernel| is the kernel that answered ("" for none).
json make_reply(const json& id, std::string_view kernel, json result);
json make_error(const json& id, int error, std::string_view message);
// An event line of a streaming request.
json make_event(const json& id, std::string_view event, json data);

// One JSON value as a single line (no newline inside), with invalid UTF-8
// replaced rather than thrown on.
std::string to_line(const json& j);

// "ENOENT" for ENOENT, "E123" for numbers it does not know.
std::string errno_name(int error);
// Inverse of errno_name for the names it produces; 0 if unknown.
int errno_from_name(std::string_view name);

}  // namespace ukernd

#endif  // UKTLS_USR_SBIN_UKERND_PROTOCOL_H_
