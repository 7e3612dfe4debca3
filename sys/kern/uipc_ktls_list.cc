// KTLS session enumeration for the operator's tools (ktlsctl sessions and
// mode). FreeBSD has no single call for this: netstat and sockstat read
// the pcb list (the net.inet.tcp.pcblist sysctl) and ktls state hangs off
// each socket buffer; this walks the same way. Kept apart from
// uipc_ktls.cc because it only reads sessions, never frames or encrypts.
#include <cerrno>

#include "sys/kern/kernel.h"
#include "sys/kern/uipc_ktls.h"
#include "sys/net/if_var.h"
#include "sys/netinet/in_pcb.h"
#include "sys/netinet/ip_var.h"
#include "sys/netinet/tcp_var.h"
#include "sys/sys/socketvar.h"

namespace uk {

namespace {

// Every TCP pcb of the kernel, referenced, so none is freed while visited.
std::vector<RefPtr<inpcb>> all_tcp_pcbs(kernel& k) {
  std::vector<RefPtr<inpcb>> all;
  if (!k.net || !k.net->inet) return all;
  inpcbinfo& info = k.net->inet->tcbinfo;
  MutexLock l(&info.ipi_lock);
  for (inpcb* inp : info.ipi_all) all.emplace_back(inp);
  return all;
}

void fill(ktls_session_info* si, const ktls_session* tls, const inpcb* inp,
          const char* state) {
  si->id = tls->id;
  si->direction = tls->direction;
  si->mode = tls->mode;
  si->cipher_algorithm = tls->params.cipher_algorithm;
  si->auth_algorithm = tls->params.auth_algorithm;
  si->cipher_key_len = tls->params.cipher_key_len;
  si->tls_vmajor = tls->params.tls_vmajor;
  si->tls_vminor = tls->params.tls_vminor;
  si->linux_personality = tls->linux_personality;
  si->records = tls->nrecords.load(std::memory_order_relaxed);
  si->bytes = tls->nbytes.load(std::memory_order_relaxed);
  si->local = {};
  si->local.sin_family = AF_INET;
  si->local.sin_addr = inp->inp_laddr;
  si->local.sin_port = inp->inp_lport;
  si->foreign = {};
  si->foreign.sin_family = AF_INET;
  si->foreign.sin_addr = inp->inp_faddr;
  si->foreign.sin_port = inp->inp_fport;
  si->tcp_state = state;
}

}  // namespace

std::vector<ktls_session_info> ktls_session_list(kernel& k) {
  std::vector<ktls_session_info> out;
  for (RefPtr<inpcb>& inp : all_tcp_pcbs(k)) {
    // Lock order: inpcb -> sockbuf.
    MutexLock l(&inp->inp_lock);
    socket* so = inp->inp_socket;
    if (so == nullptr) continue;
    tcpcb* tp = intotcpcb(inp.get());
    const char* state = tp != nullptr ? tcp_state_name(tp->t_state) : "CLOSED";
    for (sockbuf* sb : {&so->so_snd, &so->so_rcv}) {
      MutexLock s(&sb->sb_mtx);
      if (ktls_session* tls = sb->sb_tls_info) {
        ktls_session_info si;
        fill(&si, tls, inp.get(), state);
        out.push_back(si);
      }
    }
  }
  return out;
}

int ktls_session_set_tx_mode(kernel& k, uint64_t id, int mode) {
  for (RefPtr<inpcb>& inp : all_tcp_pcbs(k)) {
    socket* so = nullptr;
    bool rx = false;
    {
      MutexLock l(&inp->inp_lock);
      socket* s = inp->inp_socket;
      if (s == nullptr) continue;
      {
        MutexLock sl(&s->so_snd.sb_mtx);
        if (s->so_snd.sb_tls_info != nullptr && s->so_snd.sb_tls_info->id == id)
          so = s;
      }
      if (so == nullptr) {
        MutexLock sl(&s->so_rcv.sb_mtx);
        rx = s->so_rcv.sb_tls_info != nullptr && s->so_rcv.sb_tls_info->id == id;
      }
      // The socket outlives the pcb lock through this reference; the
      // mode switch takes the locks it needs itself (tcp_ctloutput runs
      // it with none held).
      if (so != nullptr) so->ref();
    }
    if (rx) return EOPNOTSUPP;
    if (so == nullptr) continue;
    int error = ktls_set_tx_mode(so, mode);
    release_ref(static_cast<file*>(so));
    return error;
  }
  return ENOENT;
}

}  // namespace uk
