// Intrusive reference counts, as FreeBSD's refcount(9), and RefPtr<T>, the
// smart pointer that holds one reference. Objects that FreeBSD refcounts
// (ktls_session, m_snd_tag, pages, sockets) derive from RefCounted<T>.
#ifndef UKTLS_SYS_SYS_REFCOUNT_H_
#define UKTLS_SYS_SYS_REFCOUNT_H_

#include <atomic>
#include <cassert>
#include <cstdint>
#include <utility>

namespace uk {

// A count starting at 1 (the creator's reference). When the last reference is
// released, T::last_release() runs if T has one, else the object is deleted.
template <class T>
class RefCounted {
 public:
  void ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Returns true when this was the last reference.
  bool unref() const {
    uint32_t old = refs_.fetch_sub(1, std::memory_order_acq_rel);
    assert(old > 0);
    return old == 1;
  }
  uint32_t refcount() const { return refs_.load(std::memory_order_acquire); }

 protected:
  RefCounted() = default;
  ~RefCounted() = default;

 private:
  mutable std::atomic<uint32_t> refs_{1};
};

template <class T>
inline void release_ref(T* p) {
  if (p->unref()) {
    if constexpr (requires(T* q) { q->last_release(); }) {
      p->last_release();
    } else {
      delete p;
    }
  }
}

// Holds one reference. adopt() takes over a reference the caller owns.
template <class T>
class RefPtr {
 public:
  RefPtr() = default;
  RefPtr(std::nullptr_t) {}
  // Takes a new reference on p.
  explicit RefPtr(T* p) : p_(p) {
    if (p_) p_->ref();
  }
  static RefPtr adopt(T* p) {
    RefPtr r;
    r.p_ = p;
    return r;
  }
  RefPtr(const RefPtr& o) : RefPtr(o.p_) {}
  RefPtr(RefPtr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  template <class U>
  RefPtr(RefPtr<U>&& o) noexcept : p_(o.leak()) {}
  RefPtr& operator=(RefPtr o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~RefPtr() { reset(); }

  void reset() {
    if (T* p = std::exchange(p_, nullptr)) release_ref(p);
  }
  // Gives up the reference without releasing it.
  T* leak() { return std::exchange(p_, nullptr); }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }
  bool operator==(const RefPtr& o) const { return p_ == o.p_; }

 private:
  T* p_ = nullptr;
};

template <class T, class... Args>
RefPtr<T> make_ref(Args&&... args) {
  return RefPtr<T>::adopt(new T(std::forward<Args>(args)...));
}

}  // namespace uk

#endif  // UKTLS_SYS_SYS_REFCOUNT_H_
