// Packet capture tap: the part of bpf(4) uktls needs. Each interface owns a
// bpf_if; while a capture is running, every frame the interface sends or
// receives is appended to a standard pcap file (LINKTYPE_ETHERNET) that
// Wireshark, tshark and tcpdump read. FreeBSD's bpf.c delivers to /dev/bpf
// readers; uktls writes the file directly, as `tcpdump -w` would.
//
// Entry points: bpf_start()/bpf_stop() (ifconfig-like control, ktlsctl),
// bpf_mtap()/bpf_tap() (drivers, on every frame), bpf_peers_present() (the
// drivers' cheap check, as FreeBSD's).
//
// Locking: bpf_if::mu_ serialises writers (a NIC's TX and RX threads tap
// concurrently) and start/stop. It is a leaf lock: nothing else is taken
// under it.
#ifndef UKTLS_SYS_NET_BPF_H_
#define UKTLS_SYS_NET_BPF_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "sys/sys/lock.h"

namespace uk {

struct mbuf;

// pcap file constants (pcap-savefile(5)).
constexpr uint32_t PCAP_MAGIC_USEC = 0xa1b2c3d4;
constexpr uint32_t PCAP_MAGIC_NSEC = 0xa1b23c4d;
constexpr uint32_t LINKTYPE_ETHERNET = 1;
constexpr uint32_t BPF_DEFAULT_SNAPLEN = 262144;  // tcpdump's default

struct bpf_capture_opts {
  uint32_t snaplen = BPF_DEFAULT_SNAPLEN;  // bytes kept per frame (>= 14)
  bool nanosecond = false;                 // timestamps in ns instead of us
};

// Writes one pcap file. Not locked: bpf_if serialises its use.
class PcapWriter final {
 public:
  // Creates (truncates) path and writes the file header. 0 or an errno.
  int open(const std::string& path, const bpf_capture_opts& o);
  // Appends one record; ts_ns is UTC (CLOCK_REALTIME) nanoseconds. Frames
  // longer than snaplen are cut, with their original length recorded.
  int write(uint64_t ts_ns, const uint8_t* const* parts, const size_t* lens,
            int nparts);
  int close();  // flushes; 0 or an errno from the last write/close
  ~PcapWriter();
  bool is_open() const { return f_ != nullptr; }

 private:
  FILE* f_ = nullptr;
  bpf_capture_opts o_;
  int error_ = 0;
};

class bpf_if final {
 public:
  bpf_if() = default;
  bpf_if(const bpf_if&) = delete;
  bpf_if& operator=(const bpf_if&) = delete;
  ~bpf_if();

  // Starts capturing into path. EBUSY if a capture is running, EINVAL for a
  // snaplen below an Ethernet header, or the errno of creating the file.
  int start(const std::string& path, const bpf_capture_opts& o)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Starts a capture delivered to a function instead of a file (ukernd
  // streams frames to ktlsctl this way, as a /dev/bpf reader would read
  // them). The sink runs on the NIC's threads with mu_ held: it must copy
  // what it needs and return, never call back into the network. Frames are
  // cut at snaplen as in a file. EBUSY if a capture is running.
  using Sink = std::function<void(uint64_t ts_ns, const uint8_t* frame,
                                  size_t caplen, size_t origlen)>;
  int start_sink(Sink sink, uint32_t snaplen = BPF_DEFAULT_SNAPLEN)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the capture and closes the file. ENOENT if none is running; else
  // 0 or the first write error seen during the capture. After it returns
  // a sink is never called again.
  int stop() ABSL_LOCKS_EXCLUDED(mu_);
  bool active() const { return active_.load(std::memory_order_acquire); }
  std::string path() const ABSL_LOCKS_EXCLUDED(mu_);

  // One frame in pieces (e.g. a header built apart from its payload);
  // ts_ns 0 = now.
  void tap(const uint8_t* const* parts, const size_t* lens, int nparts,
           uint64_t ts_ns = 0) ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t packets() const { return packets_.load(); }
  uint64_t bytes() const { return bytes_.load(); }

 private:
  mutable Mutex mu_;
  PcapWriter w_ ABSL_GUARDED_BY(mu_);
  Sink sink_ ABSL_GUARDED_BY(mu_);
  uint32_t sink_snaplen_ ABSL_GUARDED_BY(mu_) = 0;
  std::string path_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> active_{false};
  std::atomic<uint64_t> packets_{0}, bytes_{0};  // of the current capture
};

// FreeBSD's driver-side calls. bpf_peers_present() is the lock-free check
// drivers make before building anything for the tap.
inline bool bpf_peers_present(const bpf_if* b) { return b && b->active(); }
void bpf_tap(bpf_if* b, const uint8_t* frame, size_t len, uint64_t ts_ns = 0);
// Taps a whole mbuf chain (M_EXTPG data is read through its pages).
void bpf_mtap(bpf_if* b, const mbuf* m, uint64_t ts_ns = 0);
// UTC now, in ns, and the offset that turns a steady-clock time into UTC.
uint64_t bpf_realtime_ns();
int64_t bpf_steady_to_realtime_ns();

}  // namespace uk

#endif  // UKTLS_SYS_NET_BPF_H_
