// Kernel TLS: the kern.ipc.tls sysctl tree. Names, types, flags, defaults and
// descriptions follow FreeBSD's sys/kern/uipc_ktls.c and ktls_ocf.c.
#include "sys/kern/uipc_ktls.h"

#include <cerrno>

#include "sys/kern/kernel.h"

namespace uk {

UK_KERNEL_SLOT(KtlsState)

void ktls_free(ktls_session* tls) {
  if (tls != nullptr) release_ref(tls);
}

int ktls_sysctl_init(kernel& k, KtlsState& st) {
  (void)k;
  sysctl_ctx_list& c = st.sysctl_ctx;
  int e = 0;
  auto chk = [&e](int r) {
    if (e == 0) e = r;
  };
  chk(c.add_node("kern.ipc.tls", "Kernel TLS offload"));
  chk(c.add_node("kern.ipc.tls.stats", "Kernel TLS offload stats"));
  chk(c.add_int("kern.ipc.tls.bind_threads", CTLFLAG_RDTUN, &st.bind_threads,
                "Bind crypto threads to cores (1) or cores and domains (2) at boot"));
  chk(c.add_uint("kern.ipc.tls.maxlen", CTLFLAG_RDTUN, &st.maxlen,
                 "Maximum TLS record size"));
  chk(c.add_proc(
      "kern.ipc.tls.stats.threads", CTLTYPE_INT | CTLFLAG_RD, "I",
      [&st](sysctl_req& req) {
        int v = st.number_threads.load();
        return req.newptr ? EPERM : req.out(&v, sizeof(v));
      },
      "Number of TLS threads in thread-pool"));
  chk(c.add_uint("kern.ipc.tls.ifnet_max_rexmit_pct", CTLFLAG_RWTUN,
                 &st.ifnet_max_rexmit_pct,
                 "Max percent bytes retransmitted before ifnet TLS is disabled"));
  chk(c.add_bool("kern.ipc.tls.enable", CTLFLAG_RWTUN, &st.enable,
                 "Enable support for kernel TLS offload"));
  chk(c.add_bool("kern.ipc.tls.cbc_enable", CTLFLAG_RWTUN, &st.cbc_enable,
                 "Enable support of AES-CBC crypto for kernel TLS"));
  chk(c.add_bool("kern.ipc.tls.sw_buffer_cache", CTLFLAG_RDTUN,
                 &st.sw_buffer_cache,
                 "Enable caching of output buffers for SW encryption"));
  chk(c.add_int("kern.ipc.tls.max_reclaim", CTLFLAG_RWTUN, &st.max_reclaim,
                "Max number of 16k buffers to reclaim in thread context"));
  chk(c.add_counter("kern.ipc.tls.tasks_active", CTLFLAG_RD, &st.tasks_active,
                    "Number of active tasks"));

  struct {
    const char* name;
    counter_u64* c;
    const char* descr;
  } stats[] = {
      {"sw_tx_pending", &st.sw_tx_pending,
       "Number of TLS 1.0 records waiting for earlier TLS records"},
      {"sw_tx_inqueue", &st.sw_tx_inqueue,
       "Number of TLS records in queue to tasks for SW encryption"},
      {"sw_rx_inqueue", &st.sw_rx_inqueue,
       "Number of TLS sockets in queue to tasks for SW decryption"},
      {"offload_total", &st.offload_total,
       "Total successful TLS setups (parameters set)"},
      {"enable_calls", &st.enable_calls, "Total number of TLS enable calls made"},
      {"active", &st.active, "Total Active TLS sessions"},
      {"corrupted_records", &st.corrupted_records,
       "Total corrupted TLS records received"},
      {"failed_crypto", &st.failed_crypto, "Total TLS crypto failures"},
      {"switch_to_ifnet", &st.switch_to_ifnet,
       "TLS sessions switched from SW to ifnet"},
      {"switch_to_sw", &st.switch_to_sw, "TLS sessions switched from ifnet to SW"},
      {"switch_failed", &st.switch_failed,
       "TLS sessions unable to switch between SW and ifnet"},
      {"ifnet_disable_failed", &st.ifnet_disable_failed,
       "TLS sessions unable to switch to SW from ifnet"},
      {"ifnet_disable_ok", &st.ifnet_disable_ok,
       "TLS sessions able to switch to SW from ifnet"},
      {"destroy_task", &st.destroy_task,
       "Number of times ktls session was destroyed via taskqueue"},
  };
  for (const auto& s : stats)
    chk(c.add_counter(std::string("kern.ipc.tls.stats.") + s.name, CTLFLAG_RD,
                      s.c, s.descr));

  // ktls_ocf.c
  chk(c.add_node("kern.ipc.tls.stats.ocf", "Kernel TLS offload via OCF stats"));
  struct {
    const char* name;
    counter_u64* c;
    const char* descr;
  } ocf[] = {
      {"tls10_cbc_encrypts", &st.ocf.tls10_cbc_encrypts,
       "Total number of OCF TLS 1.0 CBC encryption operations"},
      {"tls11_cbc_decrypts", &st.ocf.tls11_cbc_decrypts,
       "Total number of OCF TLS 1.1/1.2 CBC decryption operations"},
      {"tls11_cbc_encrypts", &st.ocf.tls11_cbc_encrypts,
       "Total number of OCF TLS 1.1/1.2 CBC encryption operations"},
      {"tls12_gcm_decrypts", &st.ocf.tls12_gcm_decrypts,
       "Total number of OCF TLS 1.2 GCM decryption operations"},
      {"tls12_gcm_encrypts", &st.ocf.tls12_gcm_encrypts,
       "Total number of OCF TLS 1.2 GCM encryption operations"},
      {"tls12_gcm_recrypts", &st.ocf.tls12_gcm_recrypts,
       "Total number of OCF TLS 1.2 GCM re-encryption operations"},
      {"tls12_chacha20_decrypts", &st.ocf.tls12_chacha20_decrypts,
       "Total number of OCF TLS 1.2 Chacha20-Poly1305 decryption operations"},
      {"tls12_chacha20_encrypts", &st.ocf.tls12_chacha20_encrypts,
       "Total number of OCF TLS 1.2 Chacha20-Poly1305 encryption operations"},
      {"tls13_gcm_decrypts", &st.ocf.tls13_gcm_decrypts,
       "Total number of OCF TLS 1.3 GCM decryption operations"},
      {"tls13_gcm_encrypts", &st.ocf.tls13_gcm_encrypts,
       "Total number of OCF TLS 1.3 GCM encryption operations"},
      {"tls13_gcm_recrypts", &st.ocf.tls13_gcm_recrypts,
       "Total number of OCF TLS 1.3 GCM re-encryption operations"},
      {"tls13_chacha20_decrypts", &st.ocf.tls13_chacha20_decrypts,
       "Total number of OCF TLS 1.3 Chacha20-Poly1305 decryption operations"},
      {"tls13_chacha20_encrypts", &st.ocf.tls13_chacha20_encrypts,
       "Total number of OCF TLS 1.3 Chacha20-Poly1305 encryption operations"},
      {"inplace", &st.ocf.inplace,
       "Total number of OCF in-place operations"},
      {"separate_output", &st.ocf.separate_output,
       "Total number of OCF operations with a separate output buffer"},
      {"retries", &st.ocf.retries,
       "Number of OCF encryption operation retries"},
  };
  for (const auto& s : ocf)
    chk(c.add_counter(std::string("kern.ipc.tls.stats.ocf.") + s.name,
                      CTLFLAG_RD, s.c, s.descr));

  chk(c.add_node("kern.ipc.tls.sw", "Software TLS session stats"));
  chk(c.add_node("kern.ipc.tls.ifnet", "Hardware (ifnet) TLS session stats"));
  chk(c.add_node("kern.ipc.tls.toe", "TOE TLS session stats"));
  struct {
    const char* mode;
    const char* label;
    KtlsState::ModeGauges* g;
  } modes[] = {{"sw", "software", &st.sw},
               {"ifnet", "ifnet", &st.ifnet},
               {"toe", "TOE", &st.toe}};
  for (const auto& m : modes) {
    std::string base = std::string("kern.ipc.tls.") + m.mode + ".";
    std::string label = m.label;
    chk(c.add_counter(base + "cbc", CTLFLAG_RD, &m.g->cbc,
                      "Active number of " + label + " TLS sessions using AES-CBC"));
    chk(c.add_counter(base + "gcm", CTLFLAG_RD, &m.g->gcm,
                      "Active number of " + label + " TLS sessions using AES-GCM"));
    chk(c.add_counter(
        base + "chacha20", CTLFLAG_RD, &m.g->chacha20,
        "Active number of " + label + " TLS sessions using Chacha20-Poly1305"));
  }
  chk(c.add_counter("kern.ipc.tls.ifnet.reset", CTLFLAG_RD, &st.ifnet_reset,
                    "TLS sessions updated to a new ifnet send tag"));
  chk(c.add_counter("kern.ipc.tls.ifnet.reset_dropped", CTLFLAG_RD,
                    &st.ifnet_reset_dropped,
                    "TLS sessions dropped after failing to update ifnet send tag"));
  chk(c.add_counter("kern.ipc.tls.ifnet.reset_failed", CTLFLAG_RD,
                    &st.ifnet_reset_failed,
                    "TLS sessions that failed to allocate a new ifnet send tag"));
  chk(c.add_uint("kern.ipc.tls.ifnet.permitted", CTLFLAG_RWTUN,
                 &st.ifnet_permitted,
                 "Whether to permit hardware (ifnet) TLS sessions"));
  return e;
}

static int ktls_sysinit(kernel& k) {
  k.ktls.reset(new KtlsState(k));
  int error = ktls_sysctl_init(k, *k.ktls);
  if (error != 0) k.ktls.reset();  // a failed SYSINIT leaves nothing behind
  return error;
}

static void ktls_sysuninit(kernel& k) { k.ktls.reset(); }

UK_SYSINIT(ktls, SI_SUB_KTLS, SI_ORDER_FIRST, ktls_sysinit, ktls_sysuninit);

}  // namespace uk
