// Send tag life cycle. See if_snd_tag.h.
#include "sys/net/if_snd_tag.h"

namespace uk {

void m_snd_tag_init(m_snd_tag* mst, ifnet* ifp, const if_snd_tag_sw* sw,
                    counter_u64* num_tags) {
  mst->ifp = ifp;
  mst->sw = sw;
  mst->num_tags = num_tags;
  if (num_tags) num_tags->add(1);
}

void m_snd_tag::last_release() {
  // m_snd_tag_destroy(): the driver frees its object (which embeds this).
  counter_u64* n = num_tags;
  sw->snd_tag_free(this);
  if (n) n->add(-1);
}

}  // namespace uk
