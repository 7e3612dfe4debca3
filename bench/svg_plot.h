// A minimal SVG line chart: named series of (x, y) points on linear axes
// (or a log2 x axis), axis ticks, a legend. Enough for the benchmark's
// throughput plots without a plotting library.
#ifndef UKTLS_BENCH_SVG_PLOT_H_
#define UKTLS_BENCH_SVG_PLOT_H_

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace bench {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // y < 0: missing
};

struct Chart {
  std::string title, xlabel, ylabel;
  bool log2x = false;
  std::vector<Series> series;
};

inline std::string Fmt(double v) {
  char b[32];
  if (v != 0 && std::fabs(v) < 10)
    snprintf(b, sizeof b, "%.2g", v);
  else
    snprintf(b, sizeof b, "%.0f", v);
  return b;
}

inline std::string RenderSvg(const Chart& c) {
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                  "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                                  "#7f7f7f", "#bcbd22", "#000000", "#aec7e8"};
  const double W = 760, H = 440, L = 70, R = 230, T = 40, B = 60;
  double xmin = 1e300, xmax = -1e300, ymax = 0;
  for (const auto& s : c.series)
    for (auto [x, y] : s.points) {
      double xv = c.log2x ? std::log2(x) : x;
      xmin = std::min(xmin, xv);
      xmax = std::max(xmax, xv);
      ymax = std::max(ymax, y);
    }
  if (xmin > xmax) xmin = 0, xmax = 1;
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax <= 0) ymax = 1;
  // A round y step.
  double step = std::pow(10, std::floor(std::log10(ymax / 5)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (ymax / (step * m) <= 6) {
      step *= m;
      break;
    }
  ymax = std::ceil(ymax / step) * step;
  auto px = [&](double x) {
    double xv = c.log2x ? std::log2(x) : x;
    return L + (xv - xmin) / (xmax - xmin) * (W - L - R);
  };
  auto py = [&](double y) { return H - B - y / ymax * (H - T - B); };
  std::string o;
  char b[512];
  snprintf(b, sizeof b,
           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
           "font-family=\"sans-serif\" font-size=\"12\">\n"
           "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
           W, H);
  o += b;
  snprintf(b, sizeof b,
           "<text x=\"%.0f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
           (W - R + L) / 2, c.title.c_str());
  o += b;
  for (double y = 0; y <= ymax + step / 2; y += step) {
    snprintf(b, sizeof b,
             "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
             "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
             L, py(y), W - R, py(y), L - 6, py(y) + 4, Fmt(y).c_str());
    o += b;
  }
  std::vector<double> xs;
  for (const auto& s : c.series)
    for (auto [x, y] : s.points) xs.push_back(x);
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  for (double x : xs) {
    snprintf(b, sizeof b,
             "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
             "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
             px(x), T * 1.0, px(x), H - B, px(x), H - B + 16, Fmt(x).c_str());
    o += b;
  }
  snprintf(b, sizeof b,
           "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>"
           "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n"
           "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
           "<text transform=\"translate(16,%.0f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
           L, H - B, W - R, H - B, L, T * 1.0, L, H - B, (W - R + L) / 2, H - 20,
           c.xlabel.c_str(), (H - B + T) / 2, c.ylabel.c_str());
  o += b;
  for (size_t i = 0; i < c.series.size(); i++) {
    const Series& s = c.series[i];
    const char* col = kColors[i % (sizeof kColors / sizeof kColors[0])];
    std::string pts;
    for (auto [x, y] : s.points) {
      if (y < 0) continue;
      snprintf(b, sizeof b, "%.1f,%.1f ", px(x), py(y));
      pts += b;
    }
    snprintf(b, sizeof b,
             "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n",
             col, pts.c_str());
    o += b;
    for (auto [x, y] : s.points) {
      if (y < 0) continue;
      snprintf(b, sizeof b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
               px(x), py(y), col);
      o += b;
    }
    double ly = T + 14 + 18 * static_cast<double>(i);
    snprintf(b, sizeof b,
             "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
             "stroke-width=\"3\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
             W - R + 12, ly, W - R + 32, ly, col, W - R + 38, ly + 4, s.name.c_str());
    o += b;
  }
  o += "</svg>\n";
  return o;
}

}  // namespace bench

#endif  // UKTLS_BENCH_SVG_PLOT_H_
