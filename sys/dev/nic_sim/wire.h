// The wire: a full-duplex cable between two simulated NIC ports, possibly of
// two kernels. uktls's own model (FreeBSD has no such thing); it stands in for
// the copper, the switch buffer and the far NIC's PHY.
//
// Each direction serialises frames at `bw` bits/s behind a tail-drop queue of
// `qlen` frames or bytes, then holds them for the propagation `delay`. Random
// loss, reordering (a frame held back and delivered after the next one) and
// duplication come from a per-direction std::mt19937_64 seeded with
// seed + direction, so one seed gives one pattern: frame i of a direction
// always meets the same three draws, whatever the timing.
//
// One host thread per wire delivers frames at their scheduled times from a
// time-ordered queue, in batches. A frame due at once (no bandwidth limit, no
// delay) with nothing else on the wire is delivered by the sender's own
// thread instead: the wire thread would only relay it, one more thread
// hand-off per frame. A delivered frame is handed, as bytes, to the
// receive callback of the far port (the NIC's RX "DMA"). Frames cross kernels
// as bytes, never as mbufs: each kernel's mbufs belong to its own page pool.
//
// Lifetime: the wire is shared (std::shared_ptr) by the two ports that use it;
// it belongs to neither kernel. A port detaches when its kernel halts or its
// interface is destroyed: detach() returns only once no callback into that
// port is running, and afterwards frames to it are dropped (drops_detached).
// The thread is joined when the last owner lets go.
//
// Locking: Wire::mu_ guards the queues, parameters and PRNGs. Each port has a
// callback lock (Port::cb_mu) held while its callback runs; the callback may
// take the receiving NIC's locks but must not call back into this wire.
// Lock order: Port::cb_mu -> (receiver's locks); mu_ is never held during a
// callback.
#ifndef UKTLS_SYS_DEV_NIC_SIM_WIRE_H_
#define UKTLS_SYS_DEV_NIC_SIM_WIRE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sys/sys/lock.h"

namespace uk {

// Link parameters of one wire (both directions share them).
struct WireParams {
  uint64_t bw_bps = 0;        // bits/s; 0 = unlimited (no serialisation time)
  uint64_t delay_ns = 0;      // one-way propagation delay
  uint64_t qlen_frames = 0;   // tail-drop limit in frames; 0 = none
  uint64_t qlen_bytes = 0;    // tail-drop limit in bytes; 0 = none
  uint32_t overhead = 0;      // bytes added per frame for serialisation
                              // (24 = preamble+SFD, FCS and IFG of Ethernet)
  double loss = 0;            // probability a frame is lost on the wire
  double reorder = 0;         // probability a frame is delivered after the next
  double dup = 0;             // probability a frame arrives twice
  uint64_t seed = 1;

  bool operator==(const WireParams&) const = default;
};

// Parses "bw=10g delay=20us loss=0.001 reorder=0.001 dup=0 qlen=1000
// seed=1" on top of *p (keys not named keep their value). Units: bw takes
// k/m/g/t (decimal, bits/s) or a bare number, "0" = unlimited; delay takes
// ns/us/ms/s (a bare number is ns); qlen is frames, or bytes with a B/KB/MB
// suffix ("qlen=64KB"); loss/reorder/dup are probabilities in [0,1];
// overhead is bytes. On error returns EINVAL, leaves *p unchanged, and puts a
// message naming the offending word in *err. Sets *seed_given when the string
// names a seed.
int wire_params_parse(std::string_view s, WireParams* p, std::string* err,
                      bool* seed_given = nullptr);
// The canonical string form ("bw=10g delay=20us ..."), parseable again.
std::string wire_params_format(const WireParams& p);
// Pieces of the parser, exposed for tests and ifconfig-like output.
int parse_bandwidth(std::string_view s, uint64_t* bps);
int parse_duration_ns(std::string_view s, uint64_t* ns);
std::string format_bandwidth(uint64_t bps);
std::string format_duration_ns(uint64_t ns);

// Counters of one direction. Every frame offered is counted in tx_*; it then
// ends up delivered, or dropped for exactly one reason.
struct WireDirStats {
  uint64_t tx_frames = 0, tx_bytes = 0;        // offered by the sender
  uint64_t rx_frames = 0, rx_bytes = 0;        // delivered (dups included)
  uint64_t drops_queue = 0;                    // tail drop
  uint64_t drops_loss = 0;                     // random loss
  uint64_t drops_detached = 0;                 // receiver gone / not attached
  uint64_t reorders = 0;                       // frames delivered after a later one
  uint64_t dups = 0;                           // extra copies made
  uint64_t max_queue_bytes = 0;                // high-water mark of the queue
};

class Wire final : public std::enable_shared_from_this<Wire> {
 public:
  // Receive callback of a port: one frame, and the time (steady clock, ns)
  // the wire scheduled its arrival for. Runs on the wire's thread.
  using RxFn = std::function<void(const uint8_t* frame, size_t len,
                                  uint64_t arrival_ns)>;
  // The same, handing over the frame's buffer (no copy on delivery).
  using RxOwnFn = std::function<void(std::vector<uint8_t>&& frame,
                                     uint64_t arrival_ns)>;

  static std::shared_ptr<Wire> Create(const WireParams& p);
  ~Wire();
  Wire(const Wire&) = delete;
  Wire& operator=(const Wire&) = delete;

  // Attaches a receive callback to side 0 or 1. EBUSY if that side is taken.
  int attach(int side, RxFn rx) ABSL_LOCKS_EXCLUDED(mu_);
  int attach_owned(int side, RxOwnFn rx) ABSL_LOCKS_EXCLUDED(mu_);
  // Detaches side; when it returns, no callback into that side is running or
  // will run. Frames in flight to it are dropped. Idempotent.
  void detach(int side) ABSL_LOCKS_EXCLUDED(mu_);
  bool attached(int side) const ABSL_LOCKS_EXCLUDED(mu_);

  // Sends a frame from `side` towards the other side. Never blocks on the
  // receiver. Returns 0, or ENOBUFS when the frame was tail-dropped (a real
  // NIC would not know; callers count it as an output drop if they wish).
  int transmit(int side, const uint8_t* frame, size_t len)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The same, taking the frame's buffer: a NIC hands over the frame it
  // built, and the far NIC receives that buffer, so a frame is copied
  // neither into nor out of the wire (a duplicate is the only copy).
  int transmit(int side, std::vector<uint8_t>&& frame) ABSL_LOCKS_EXCLUDED(mu_);

  // Parameters, changeable while frames are in flight: frames already
  // scheduled keep their times. A new seed reseeds both generators.
  int set_params(std::string_view s, std::string* err) ABSL_LOCKS_EXCLUDED(mu_);
  void set_params(const WireParams& p, bool reseed) ABSL_LOCKS_EXCLUDED(mu_);
  WireParams params() const ABSL_LOCKS_EXCLUDED(mu_);

  // Experiment hook: frames leaving `from_side` for which `fn` returns true
  // are lost on the wire (counted in drops_loss), after the random draws,
  // so a seed's pattern is unchanged. Lets a test drop chosen segments
  // (e.g. two in one window). Runs under the wire's lock: fn must not call
  // into the wire. A null fn removes the filter.
  using DropFn = std::function<bool(const uint8_t* frame, size_t len)>;
  void set_drop_filter(int from_side, DropFn fn) ABSL_LOCKS_EXCLUDED(mu_);

  // Counters of the direction that starts at `from_side`.
  WireDirStats stats(int from_side) const ABSL_LOCKS_EXCLUDED(mu_);
  // Frames scheduled and not yet delivered or dropped, both directions.
  size_t in_flight() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until nothing is in flight (or timeout); true if drained.
  bool drain(uint64_t timeout_ns) ABSL_LOCKS_EXCLUDED(mu_);

  static uint64_t now_ns();

 private:
  explicit Wire(const WireParams& p);

  struct Event {
    uint64_t at_ns;
    uint64_t seq;  // tie-break: FIFO among equal times
    int to_side;
    std::vector<uint8_t> frame;
    bool operator>(const Event& o) const {
      return at_ns != o.at_ns ? at_ns > o.at_ns : seq > o.seq;
    }
  };
  struct Dir {
    std::mt19937_64 rng;
    uint64_t link_free_ns = 0;  // when the serialiser is next idle
    // Frames still being serialised: (end time, bytes), FIFO.
    std::deque<std::pair<uint64_t, uint32_t>> serialising;
    uint64_t queued_bytes = 0;
    // A frame held back for reordering, with the time it is due at the latest.
    std::optional<Event> held;
    uint64_t held_deadline = 0;
    WireDirStats st;
    DropFn drop_fn;
  };
  struct Port {
    Mutex cb_mu;  // held while the callback runs
    RxOwnFn rx ABSL_GUARDED_BY(cb_mu);
    std::atomic<bool> attached{false};
  };

  void run() ABSL_LOCKS_EXCLUDED(mu_);
  // Hands e's frame to the far port's callback; false if the port is gone.
  // mu_ not held.
  bool deliver(Event& e) ABSL_LOCKS_EXCLUDED(mu_);
  void reseed_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double draw(Dir& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void push_locked(Event e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  CondVar cv_;        // wakes the thread: new earliest event, or stop
  CondVar idle_cv_;   // wakes drain(): in-flight count reached zero
  WireParams p_ ABSL_GUARDED_BY(mu_);
  Dir dir_[2] ABSL_GUARDED_BY(mu_);
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> q_
      ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  // When the thread will next wake by itself (UINT64_MAX: only when told).
  uint64_t sleep_until_ ABSL_GUARDED_BY(mu_) = 0;
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // q_ + held + being delivered
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Port port_[2];
  std::thread thread_;
};

}  // namespace uk

#endif  // UKTLS_SYS_DEV_NIC_SIM_WIRE_H_
