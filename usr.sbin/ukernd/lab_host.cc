#include "usr.sbin/ukernd/lab_host.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "sys/kern/kern_proc.h"
#include "sys/kern/kernel.h"
#include "sys/kern/subr_prf.h"
#include "usr.sbin/ukernd/thread_cpu.h"

namespace ukernd {

namespace {

// The dmesg echo: a stdio stream whose writes are cut into lines, each
// written to the log descriptor with one write(2) and the kernel's prefix,
// so lines of two kernels never interleave mid-line. Dmesg::append calls
// it with the kernel's message-buffer lock held, one writer at a time.
struct EchoCookie {
  int fd;
  std::string prefix;
  std::string partial;
};

ssize_t echo_write(void* c, const char* buf, size_t size) {
  auto* e = static_cast<EchoCookie*>(c);
  e->partial.append(buf, size);
  size_t start = 0;
  for (size_t nl; (nl = e->partial.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    std::string line = e->prefix + e->partial.substr(start, nl + 1 - start);
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = write(e->fd, line.data() + off, line.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      off += n;
    }
  }
  e->partial.erase(0, start);
  return static_cast<ssize_t>(size);
}

int echo_close(void* c) {
  auto* e = static_cast<EchoCookie*>(c);
  if (!e->partial.empty()) {
    std::string line = e->prefix + e->partial + "\n";
    (void)!write(e->fd, line.data(), line.size());
  }
  delete e;
  return 0;
}

FILE* open_echo(FILE* log, const std::string& name) {
  auto* c = new EchoCookie{fileno(log), "[" + name + "] ", ""};
  cookie_io_functions_t io{};
  io.write = echo_write;
  io.close = echo_close;
  FILE* f = fopencookie(c, "w", io);
  if (f == nullptr) {
    delete c;
    return nullptr;
  }
  setvbuf(f, nullptr, _IONBF, 0);
  return f;
}

std::string errno_words(int e) {
  if (e == ENOSYS) return "not supported by this kernel (ENOSYS)";
  return strerror(e);
}

}  // namespace

std::unique_ptr<Lab> Lab::boot(LabSpec spec, FILE* log, bool echo_dmesg,
                               std::string* err) {
  std::unique_ptr<Lab> lab(new Lab(std::move(spec), log));
  lab->kernels_.reserve(lab->spec_.kernels.size());
  for (const KernelSpec& ks : lab->spec_.kernels) {
    std::string tunables = ks.tunables_string();
    uk_boot_config cfg{};
    cfg.hostname = ks.hostname.c_str();
    cfg.ncpus = ks.ncpus;
    cfg.modules = ks.modules ? ks.modules->c_str() : nullptr;
    cfg.tunables = tunables.c_str();
    LabKernel lk;
    lk.spec = &ks;
    std::set<pid_t> before = list_tids();
    lk.k = uk_boot(&cfg);
    if (lk.k == nullptr) {
      *err = "kernel '" + ks.name + "': boot failed: " + strerror(errno);
      return nullptr;  // ~Lab halts the kernels already booted
    }
    lk.booted = std::chrono::steady_clock::now();
    for (pid_t t : list_tids())
      if (!before.count(t)) lk.boot_tids.push_back(t);
    lk.p = uk_proc_create(lk.k, "ukernd");
    if (lk.p == nullptr) {
      *err = "kernel '" + ks.name + "': cannot create a process: " + strerror(errno);
      uk_halt(lk.k);
      return nullptr;
    }
    if (echo_dmesg) {
      // What boot printed, then everything after it as it happens.
      uk::Dmesg& d = *lk.p->k->dmesg;
      lk.echo = open_echo(log, ks.name);
      if (lk.echo != nullptr) {
        std::string boot_msgs = d.read();
        fwrite(boot_msgs.data(), 1, boot_msgs.size(), lk.echo);
        d.set_echo(lk.echo, "");
      }
    }
    lab->kernels_.push_back(std::move(lk));
  }
  lab->configure_network();
  return lab;
}

// NICs ("create", "inet A/LEN up", options) and wires. While the kernel
// lacks simulated NICs these return ENOSYS: one warning line, then the lab
// runs without a network.
void Lab::configure_network() {
  for (LabKernel& lk : kernels_) {
    for (const NicSpec& n : lk.spec->nics) {
      std::vector<std::string> steps = {"create"};
      if (!n.inet.empty()) steps.push_back("inet " + n.inet + " up");
      for (const std::string& o : n.options) steps.push_back(o);
      for (const std::string& s : steps) {
        std::set<pid_t> before = list_tids();
        int rc = uk_ifconfig(lk.k, n.name.c_str(), s.c_str());
        for (pid_t t : list_tids())
          if (!before.count(t)) lk.nic_tids.push_back(t);
        if (rc != 0) {
          int e = errno;
          if (e == ENOSYS) {
            fprintf(log_,
                    "ukernd: warning: ifconfig %s %s: %s; the lab runs "
                    "without NICs and wires\n",
                    n.name.c_str(), s.c_str(), errno_words(e).c_str());
            return;
          }
          fprintf(log_, "ukernd: warning: %s: ifconfig %s %s: %s\n",
                  lk.spec->name.c_str(), n.name.c_str(), s.c_str(),
                  errno_words(e).c_str());
          break;
        }
        if (s == "create") lk.nics.push_back(n.name);
      }
    }
  }
  for (const WireSpec& w : spec_.wires) {
    LabKernel* a = find(w.a_kernel);
    LabKernel* b = find(w.b_kernel);
    if (a == nullptr || b == nullptr) continue;  // validated at parse time
    std::string params = w.params();
    if (uk_wire(a->k, w.a_nic.c_str(), b->k, w.b_nic.c_str(), params.c_str()) != 0) {
      int e = errno;
      fprintf(log_, "ukernd: warning: wire %s:%s <-> %s:%s: %s\n",
              w.a_kernel.c_str(), w.a_nic.c_str(), w.b_kernel.c_str(),
              w.b_nic.c_str(), errno_words(e).c_str());
      if (e == ENOSYS) return;
    }
  }
}

LabKernel* Lab::find(std::string_view name) {
  for (LabKernel& k : kernels_)
    if (k.spec->name == name) return &k;
  return nullptr;
}

std::string Lab::kernel_names() const {
  std::string s;
  for (const LabKernel& k : kernels_) {
    if (!s.empty()) s += ", ";
    s += k.spec->name;
  }
  return s;
}

void Lab::halt() {
  if (halted_) return;
  halted_ = true;
  conns_.close_all();
  // A closed connection's sockets, and with them its KTLS sessions, go
  // away once TCP has finished with them; give that a moment so the
  // modules the sessions hold (ktls_ocf) unload cleanly at halt.
  for (LabKernel& lk : kernels_) {
    for (int i = 0; i < 200; i++) {
      uint64_t active = 0;
      size_t len = sizeof active;
      if (uk_sysctlbyname(lk.p, "kern.ipc.tls.stats.active", &active, &len, nullptr, 0) != 0 ||
          active == 0)
        break;
      usleep(10 * 1000);
    }
  }
  for (auto it = kernels_.rbegin(); it != kernels_.rend(); ++it) {
    // Halt destroys ukernd's process with the others. The echo stays on
    // until the kernel is gone so shutdown messages reach the log.
    if (uk_halt(it->k) != 0) {
      fprintf(log_, "ukernd: %s: halt: %s\n", it->spec->name.c_str(),
              strerror(errno));
    }
    it->k = nullptr;
    it->p = nullptr;
    if (it->echo != nullptr) fclose(it->echo);
    it->echo = nullptr;
  }
}

void Lab::set_service_state(const std::string& name, const std::string& state,
                            const nlohmann::json& info) {
  uk::MutexLock l(&service_mu_);
  services_[name] = {state, info};
}

std::pair<std::string, nlohmann::json> Lab::service_state(const std::string& name) {
  uk::MutexLock l(&service_mu_);
  auto it = services_.find(name);
  if (it == services_.end()) return {"not-started", nlohmann::json::object()};
  return it->second;
}

Lab::~Lab() { halt(); }

}  // namespace ukernd
