// TCP output. Mirrors FreeBSD's sys/netinet/tcp_output.c: how much may be
// sent (never more than sbavail(): bytes at or after sb_fnrdy are not
// ready), Nagle, window updates, SYN options (MSS, window scale), the FIN
// only with the last byte of the send buffer, segments built with m_copym
// so data pages are shared (M_EXTPG records pass through untouched), send
// buffer autosizing (tcp_sndbuf_autoscale), and timer management.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "sys/kern/kernel.h"
#include "sys/net/if_var.h"
#include "sys/netinet/ip.h"
#include "sys/netinet/tcp_var.h"

namespace uk {

static const uint8_t tcp_outflags[] = {
    TH_RST | TH_ACK, 0,      TH_SYN,          TH_SYN | TH_ACK,
    TH_ACK,          TH_ACK, TH_FIN | TH_ACK, TH_FIN | TH_ACK,
    TH_FIN | TH_ACK, TH_ACK, TH_ACK,
};

constexpr int kMaxLinkHdr = 16;

int tcp_output(tcpcb* tp) {
  inpcb* inp = tp->t_inpcb;
  InetState& in = *inp->inp_pcbinfo;
  kernel& k = in.k;
  inp->inp_lock.AssertHeld();
  socket* so = inp->inp_socket;
  if (so == nullptr) {
    // TIME_WAIT or a detached pcb: only an ACK can be owed.
    if (tp->t_flags & TF_ACKNOW) {
      tcp_respond(k, nullptr, inp->inp_laddr, inp->inp_faddr, inp->inp_lport,
                  inp->inp_fport, tp->rcv_nxt, tp->snd_max, TH_ACK, 0);
      tp->t_flags &= ~(TF_ACKNOW | TF_DELACK);
    }
    return 0;
  }
  bool idle = tp->snd_max == tp->snd_una;
  int sendalot;
  int error = 0;
again:
  sendalot = 0;
  long off = static_cast<int32_t>(tp->snd_nxt - tp->snd_una);
  long sendwin = std::min(tp->snd_wnd, tp->snd_cwnd);
  uint8_t flags = tcp_outflags[tp->t_state];
  if (tp->t_flags & TF_NEEDFIN) flags |= TH_FIN;
  if (tp->t_flags & TF_FORCEDATA) {
    if (sendwin == 0) {
      sendwin = 1;
    } else {
      tcp_timer_activate(tp, TT_PERSIST, 0);
      tp->t_rxtshift = 0;
    }
  }
  long recwin, rcv_hiwat;
  {
    MutexLock l(&so->so_rcv.sb_mtx);
    recwin = std::max<long>(sbspace(&so->so_rcv), 0);
    rcv_hiwat = so->so_rcv.sb_hiwat;
  }
  sockbuf* sb = &so->so_snd;
  sb->sb_mtx.Lock();
  long avail = sbavail(sb);
  long used = sbused(sb);
  long len = std::min(avail, sendwin) - off;
  if ((flags & TH_SYN) && SEQ_GT(tp->snd_nxt, tp->snd_una)) {
    if (tp->t_state != TCPS_SYN_RECEIVED) flags &= ~TH_SYN;
    off--;
    len++;
  }
  // No data with a SYN (FreeBSD without TCP Fast Open).
  if (flags & TH_SYN) {
    len = 0;
    flags &= ~TH_FIN;
  }
  if (len < 0) {
    len = 0;
    if (sendwin == 0) {
      tcp_timer_activate(tp, TT_REXMT, 0);
      tp->t_rxtshift = 0;
      tp->snd_nxt = tp->snd_una;
      if (!tcp_timer_active(tp, TT_PERSIST)) tcp_setpersist(tp);
    }
  }
  // tcp_sndbuf_autoscale.
  if (in.tcp_do_autosndbuf.load() && (sb->sb_flags & SB_AUTOSIZE) &&
      used >= static_cast<long>(sb->sb_hiwat / 8 * 7) &&
      used < in.tcp_autosndbuf_max.load() && sendwin >= used - off) {
    unsigned want = std::min<unsigned>(
        sb->sb_hiwat + in.tcp_autosndbuf_inc.load(),
        in.tcp_autosndbuf_max.load());
    if (sbreserve_locked(sb, want, k.net->maxsockbuf.load()) != 0)
      sb->sb_flags &= ~SB_AUTOSIZE;
  }
  if (len > tp->t_maxseg) {
    len = tp->t_maxseg;
    sendalot = 1;
  }
  if (SEQ_LT(tp->snd_nxt + len, tp->snd_una + used)) flags &= ~TH_FIN;

  if (recwin < rcv_hiwat / 4 && recwin < tp->t_maxseg)
    recwin = 0;
  if (recwin > static_cast<long>(TCP_MAXWIN) << tp->rcv_scale)
    recwin = static_cast<long>(TCP_MAXWIN) << tp->rcv_scale;
  if (SEQ_GT(tp->rcv_adv, tp->rcv_nxt) &&
      recwin < static_cast<long>(tp->rcv_adv - tp->rcv_nxt))
    recwin = tp->rcv_adv - tp->rcv_nxt;

  if (len) {
    if (len >= tp->t_maxseg) goto send;
    if (!(tp->t_flags & TF_MORETOCOME) &&
        (idle || (tp->t_flags & TF_NODELAY)) && len + off >= avail &&
        !(tp->t_flags & TF_NOPUSH))
      goto send;
    if (tp->t_flags & TF_FORCEDATA) goto send;
    if (tp->max_sndwnd > 0 && len >= static_cast<long>(tp->max_sndwnd / 2))
      goto send;
    if (SEQ_LT(tp->snd_nxt, tp->snd_max)) goto send;
  }
  if (recwin > 0 && tp->t_state >= TCPS_ESTABLISHED) {
    long adv = recwin - static_cast<int32_t>(tp->rcv_adv - tp->rcv_nxt);
    long hiwat = rcv_hiwat;
    if (adv >= 2 * tp->t_maxseg &&
        (adv >= hiwat / 4 || recwin <= hiwat / 8 || hiwat <= 8 * tp->t_maxseg))
      goto send;
    if (2 * adv >= hiwat) goto send;
  }
  if (tp->t_flags & TF_ACKNOW) goto send;
  if (flags & (TH_SYN | TH_RST)) goto send;
  if (SEQ_GT(tp->snd_up, tp->snd_una)) goto send;
  if ((flags & TH_FIN) &&
      (!(tp->t_flags & TF_SENTFIN) || tp->snd_nxt == tp->snd_una))
    goto send;
  // Nothing to send now. Data waiting on a closed window gets the persist
  // timer unless the retransmit timer covers it.
  if (avail > off && !tcp_timer_active(tp, TT_REXMT) &&
      !tcp_timer_active(tp, TT_PERSIST)) {
    tp->t_rxtshift = 0;
    tcp_setpersist(tp);
  }
  sb->sb_mtx.Unlock();
  return 0;

send : {
  uint8_t opt[TCP_MAXOLEN];
  int optlen = 0;
  if (flags & TH_SYN) {
    tp->snd_nxt = tp->iss;
    int mss = tcp_mssopt(tp);
    opt[0] = TCPOPT_MAXSEG;
    opt[1] = TCPOLEN_MAXSEG;
    opt[2] = mss >> 8;
    opt[3] = mss & 0xff;
    optlen = 4;
    if ((tp->t_flags & TF_REQ_SCALE) &&
        (tp->t_state == TCPS_SYN_SENT || (tp->t_flags & TF_RCVD_SCALE))) {
      opt[4] = TCPOPT_NOP;
      opt[5] = TCPOPT_WINDOW;
      opt[6] = TCPOLEN_WINDOW;
      opt[7] = tp->request_r_scale;
      optlen = 8;
    }
  }
  int hdrlen = sizeof(ip) + sizeof(tcphdr) + optlen;
  mbuf* m = m_gethdr(k, M_NOWAIT, MT_DATA);
  if (m == nullptr) {
    sb->sb_mtx.Unlock();
    error = ENOBUFS;
    goto out;
  }
  m->m_data += kMaxLinkHdr;
  m->m_len = hdrlen;
  if (len) {
    if (SEQ_LT(tp->snd_nxt, tp->snd_max)) {
      in.tcps.tcps_sndrexmitpack.add(1);
      in.tcps.tcps_sndrexmitbyte.add(len);
    } else {
      in.tcps.tcps_sndpack.add(1);
      in.tcps.tcps_sndbyte.add(len);
    }
    unsigned moff;
    mbuf* sm = sbsndptr_noadv(sb, off, &moff);
    // Small segments are copied behind the header, except from unmapped
    // (M_EXTPG) mbufs: sendfile and KTLS data stays by reference, so the
    // tail of a record never costs a copy (FreeBSD skips the copy for
    // NIC TLS records the same way).
    if (len <= MHLEN - hdrlen - kMaxLinkHdr && !(sm->m_flags & M_EXTPG)) {
      m_copydata(sb->sb_mb, off, len, mtod(m) + hdrlen);
      m->m_len += len;
    } else {
      m->m_next = m_copym(sm, moff, len, M_NOWAIT);
      if (m->m_next == nullptr) {
        sb->sb_mtx.Unlock();
        m_freem(m);
        error = ENOBUFS;
        goto out;
      }
    }
    if (off + len == used) flags |= TH_PUSH;
  } else {
    if (tp->t_flags & TF_ACKNOW)
      in.tcps.tcps_sndacks.add(1);
    else if (flags & (TH_SYN | TH_FIN | TH_RST))
      in.tcps.tcps_sndctrl.add(1);
    else if (SEQ_GT(tp->snd_up, tp->snd_una))
      in.tcps.tcps_sndurg.add(1);
    else
      in.tcps.tcps_sndwinup.add(1);
  }
  sb->sb_mtx.Unlock();

  m->m_pkthdr.len = hdrlen + static_cast<int>(len);
  ip* iph = mtod<ip*>(m);
  memset(iph, 0, sizeof(ip) + sizeof(tcphdr));
  tcphdr* th = reinterpret_cast<tcphdr*>(iph + 1);
  iph->ip_len = htons(static_cast<uint16_t>(m->m_pkthdr.len));
  iph->ip_p = IPPROTO_TCP;
  iph->ip_ttl = inp->inp_ip_ttl;
  iph->ip_tos = inp->inp_ip_tos;
  iph->ip_src = inp->inp_laddr;
  iph->ip_dst = inp->inp_faddr;
  th->th_sport = inp->inp_lport;
  th->th_dport = inp->inp_fport;
  if (optlen) memcpy(th + 1, opt, optlen);
  th->th_off = (sizeof(tcphdr) + optlen) >> 2;

  // A retransmitted FIN reuses its sequence number.
  if ((flags & TH_FIN) && (tp->t_flags & TF_SENTFIN) &&
      tp->snd_nxt == tp->snd_max)
    tp->snd_nxt--;
  if (len || (flags & (TH_SYN | TH_FIN)) || tcp_timer_active(tp, TT_PERSIST))
    th->th_seq = htonl(tp->snd_nxt);
  else
    th->th_seq = htonl(tp->snd_max);
  th->th_ack = htonl(tp->rcv_nxt);
  if (SEQ_GT(tp->snd_up, tp->snd_nxt)) {
    th->th_urp = htons(static_cast<uint16_t>(
        std::min<uint32_t>(tp->snd_up - tp->snd_nxt, 65535)));
    flags |= TH_URG;
  } else {
    tp->snd_up = tp->snd_una;
  }
  th->th_flags = flags;
  uint32_t win;
  if (flags & TH_SYN)
    win = static_cast<uint32_t>(std::min<long>(recwin, TCP_MAXWIN));
  else
    win = static_cast<uint32_t>(recwin >> tp->rcv_scale);
  th->th_win = htons(static_cast<uint16_t>(std::min<uint32_t>(win, TCP_MAXWIN)));
  if (win == 0)
    tp->t_flags |= TF_RXWIN0SENT;
  else
    tp->t_flags &= ~TF_RXWIN0SENT;
  // Checksum: the pseudo-header sum now; the rest is done by the interface
  // (if_hwassist) or by ip_output's in_delayed_cksum.
  th->th_sum = in_pseudo(iph->ip_src.s_addr, iph->ip_dst.s_addr,
                         htons(static_cast<uint16_t>(
                             m->m_pkthdr.len - sizeof(ip) + IPPROTO_TCP)));
  m->m_pkthdr.csum_flags = CSUM_TCP;
  m->m_pkthdr.csum_data = offsetof(tcphdr, th_sum);

  if (!(tp->t_flags & TF_FORCEDATA) || !tcp_timer_active(tp, TT_PERSIST)) {
    tcp_seq startseq = tp->snd_nxt;
    if (flags & TH_SYN) tp->snd_nxt++;
    if (flags & TH_FIN) {
      tp->snd_nxt++;
      tp->t_flags |= TF_SENTFIN;
    }
    tp->snd_nxt += len;
    if (SEQ_GT(tp->snd_nxt, tp->snd_max)) {
      tp->snd_max = tp->snd_nxt;
      if (tp->t_rtttime == 0) {
        tp->t_rtttime = ticks_now();
        tp->t_rtseq = startseq;
        in.tcps.tcps_segstimed.add(1);
      }
    }
    if (!tcp_timer_active(tp, TT_REXMT) && tp->snd_nxt != tp->snd_una) {
      if (tcp_timer_active(tp, TT_PERSIST)) {
        tcp_timer_activate(tp, TT_PERSIST, 0);
        tp->t_rxtshift = 0;
      }
      tcp_timer_activate(tp, TT_REXMT, tp->t_rxtcur);
    }
  } else if (SEQ_GT(tp->snd_nxt + len, tp->snd_max)) {
    tp->snd_max = tp->snd_nxt + len;
  }
  if (recwin > 0 && SEQ_GT(tp->rcv_nxt + recwin, tp->rcv_adv))
    tp->rcv_adv = tp->rcv_nxt + recwin;
  tp->t_flags &= ~(TF_ACKNOW | TF_DELACK);
  tcp_timer_activate(tp, TT_DELACK, 0);
  in.tcps.tcps_sndtotal.add(1);
  error = ip_output(k, m, (so->so_options.load() & SOF_BROADCAST) ? IP_ALLOWBROADCAST : 0);
}
out:
  if (error) {
    if (error == ENOBUFS) {
      // The data stays queued; the retransmit timer resends it.
      if (!tcp_timer_active(tp, TT_REXMT) && !tcp_timer_active(tp, TT_PERSIST))
        tcp_timer_activate(tp, TT_REXMT, tp->t_rxtcur);
      tp->snd_cwnd = tp->t_maxseg;
      return 0;
    }
    if ((error == EHOSTUNREACH || error == ENETDOWN || error == ENETUNREACH ||
         error == EACCES) &&
        tp->t_state >= TCPS_SYN_SENT) {
      tp->t_softerror = error;
      return error;
    }
    return error;
  }
  if (sendalot) goto again;
  return 0;
}

}  // namespace uk
