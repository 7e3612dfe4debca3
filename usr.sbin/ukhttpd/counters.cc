#include "usr.sbin/ukhttpd/counters.h"

namespace ukhttpd {
namespace {
uint64_t Get(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }
}  // namespace

void Counters::count_status(int status) {
  for (size_t i = 0; i < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) {
      by_status_[i].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  other_status_.fetch_add(1, std::memory_order_relaxed);
}

uint64_t Counters::status(int status) const {
  for (size_t i = 0; i < kStatuses.size(); ++i) {
    if (kStatuses[i] == status) return Get(by_status_[i]);
  }
  return 0;
}

nlohmann::json Counters::to_json() const {
  nlohmann::json j;
  j["connections"] = Get(connections);
  j["connections-refused"] = Get(connections_refused);
  j["handshakes"] = Get(handshakes);
  j["handshake-failures"] = Get(handshake_failures);
  j["tls12"] = Get(tls12);
  j["tls13"] = Get(tls13);
  j["ktls-tx-connections"] = Get(ktls_tx_connections);
  j["ktls-rx-connections"] = Get(ktls_rx_connections);
  j["requests"] = Get(requests);
  j["request-bytes"] = Get(request_bytes);
  j["response-bytes"] = Get(response_bytes);
  nlohmann::json r = nlohmann::json::object();
  for (size_t i = 0; i < kStatuses.size(); ++i) {
    uint64_t v = Get(by_status_[i]);
    if (v) r[std::to_string(kStatuses[i])] = v;
  }
  if (uint64_t v = Get(other_status_)) r["other"] = v;
  j["responses"] = r;
  j["bodies"] = {{"sendfile", Get(bodies_sendfile)},
                 {"ssl-write", Get(bodies_ssl_write)},
                 {"sendfile-bytes", Get(body_bytes_sendfile)},
                 {"ssl-write-bytes", Get(body_bytes_ssl_write)},
                 {"sendfile-errors", Get(sendfile_errors)}};
  j["connection-cpu-ns"] = Get(connection_cpu_ns);
  return j;
}

std::string Counters::to_text() const {
  std::string s;
  s += "ukhttpd: connections " + std::to_string(Get(connections)) + " (" +
       std::to_string(Get(connections_refused)) + " refused), handshakes " +
       std::to_string(Get(handshakes)) + " (TLS 1.2 " + std::to_string(Get(tls12)) +
       ", TLS 1.3 " + std::to_string(Get(tls13)) + ", " +
       std::to_string(Get(handshake_failures)) + " failed)\n";
  s += "ukhttpd: KTLS TX active on " + std::to_string(Get(ktls_tx_connections)) +
       " connections, RX on " + std::to_string(Get(ktls_rx_connections)) + "\n";
  s += "ukhttpd: requests " + std::to_string(Get(requests)) + ", responses";
  for (size_t i = 0; i < kStatuses.size(); ++i) {
    if (uint64_t v = Get(by_status_[i])) {
      s += " " + std::to_string(kStatuses[i]) + ":" + std::to_string(v);
    }
  }
  if (uint64_t v = Get(other_status_)) s += " other:" + std::to_string(v);
  s += "\n";
  s += "ukhttpd: bodies " + std::to_string(Get(bodies_sendfile)) + " by sendfile (" +
       std::to_string(Get(body_bytes_sendfile)) + " bytes), " +
       std::to_string(Get(bodies_ssl_write)) + " by SSL_write (" +
       std::to_string(Get(body_bytes_ssl_write)) +
       " bytes; fallback, KTLS TX not active), " + std::to_string(Get(sendfile_errors)) +
       " sendfile errors\n";
  return s;
}

}  // namespace ukhttpd
