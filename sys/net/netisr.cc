// The netisr thread. Mirrors FreeBSD's sys/net/netisr.c in its simplest
// configuration (one queue, one thread, deferred dispatch).
#include "sys/net/netisr.h"

#include <cerrno>

#include "sys/kern/kern_kthread.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "sys/netinet/ip_var.h"

namespace uk {

Netisr::Netisr(kernel& k, bool bind) : k_(k) {
  kthread_add(
      k, "netisr",
      [this, bind](kthread*) {
        // One thread, for CPU 0 (FreeBSD's netisr with maxthreads=1).
        if (bind) {
          if (int e = kthread_bind_cpu(0))
            kprintf(k_, "netisr: unable to bind the thread to CPU 0: error %d\n", e);
        }
        run();
      },
      [this] {
        MutexLock l(&mu_);
        stop_ = true;
        cv_.SignalAll();
      },
      &td_);
}

Netisr::~Netisr() { stop(); }

int Netisr::queue(mbuf* m) {
  {
    MutexLock l(&mu_);
    if (!stop_ && len_ < qlimit.load(std::memory_order_relaxed)) {
      m->m_nextpkt = nullptr;
      if (tail_)
        tail_->m_nextpkt = m;
      else
        head_ = m;
      tail_ = m;
      bool wake = len_ == 0;
      len_++;
      if (wake) cv_.Signal();
      queued.add(1);
      return 0;
    }
  }
  qdrops.add(1);
  m_freem(m);
  return ENOBUFS;
}

void Netisr::stop() {
  mbuf* m;
  {
    MutexLock l(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (td_ != nullptr) {
    kthread_stop(k_, td_);
    td_ = nullptr;
  }
  {
    MutexLock l(&mu_);
    m = head_;
    head_ = tail_ = nullptr;
    len_ = 0;
  }
  while (m) {
    mbuf* n = m->m_nextpkt;
    m->m_nextpkt = nullptr;
    m_freem(m);
    m = n;
  }
}

void Netisr::run() {
  for (;;) {
    mbuf* batch;
    {
      MutexLock l(&mu_);
      while (head_ == nullptr && !stop_) cv_.Wait(&mu_);
      if (stop_) return;
      batch = head_;
      head_ = tail_ = nullptr;
      len_ = 0;
    }
    while (batch) {
      mbuf* m = batch;
      batch = m->m_nextpkt;
      m->m_nextpkt = nullptr;
      handled.add(1);
      ip_input(k_, m);
    }
  }
}

}  // namespace uk
