// netisr(9): the kernel's network input thread. Interfaces queue received
// packets (if_input) and the thread runs ip_input on them, so protocol
// input never runs on the sender's stack with the sender's locks held (as
// FreeBSD's loopback, which netisr_queue()s every packet).
//
// Locking: Netisr::mu_ guards the queue only; packets are processed with
// no netisr lock held.
#ifndef UKTLS_SYS_NET_NETISR_H_
#define UKTLS_SYS_NET_NETISR_H_

#include <atomic>
#include <thread>

#include "sys/sys/counter.h"
#include "sys/sys/lock.h"
#include "sys/sys/mbuf.h"

namespace uk {

struct kernel;

class Netisr final {
 public:
  // bind: pin the thread to CPU 0's host core (net.isr.bindthreads).
  explicit Netisr(kernel& k, bool bind = false);
  ~Netisr();  // stop() if not done

  // Queues one packet (consumed). ENOBUFS (and the packet is freed,
  // counted in qdrops) when the queue is full or the thread has stopped.
  int queue(mbuf* m) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the thread and frees queued packets. Later queue() calls drop.
  void stop() ABSL_LOCKS_EXCLUDED(mu_);
  // False if the thread could not be started.
  bool running() const { return td_ != nullptr; }

  std::atomic<int> qlimit{4096};  // net.isr.defaultqlimit
  counter_u64 queued;
  counter_u64 handled;
  counter_u64 qdrops;

 private:
  void run() ABSL_LOCKS_EXCLUDED(mu_);

  kernel& k_;
  Mutex mu_;
  CondVar cv_;
  mbuf* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  mbuf* tail_ ABSL_GUARDED_BY(mu_) = nullptr;
  int len_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  struct kthread* td_ = nullptr;  // the "netisr" kthread
};

}  // namespace uk

#endif  // UKTLS_SYS_NET_NETISR_H_
