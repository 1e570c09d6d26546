"""The simulate-day picture: battery percent over the day, with the mode as bands."""

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"SLEEP": "#d9d9d9", "STANDBY": "#c6dbef", "INTERACTIVE": "#fdae6b",
          "CAPTURE": "#fb6a4a", "RECORDING": "#9e9ac8", "LOW_BATTERY": "#fee391",
          "CRITICAL": "#252525", "CHARGING": "#a1d99b", "HOT": "#e7298a"}


def plot_day(path, profile, series, base_series, report) -> None:
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    seen = set()
    for (h0, _, mode), (h1, _, _) in zip(series, series[1:]):
        label = mode if mode not in seen else None
        seen.add(mode)
        ax.axvspan(h0, h1, color=COLORS.get(mode, "#ffffff"), alpha=0.6, lw=0, label=label)
    ax.plot([s[0] for s in series], [s[1] for s in series], color="#08519c", lw=2,
            label=f"scheduler: {report['hours']:.1f} h projected")
    ax.plot([s[0] for s in base_series], [s[1] for s in base_series], color="#a50f15", lw=1.5,
            ls="--", label=f"always-on: {report['baseline_hours']:.1f} h projected")
    ax.set_xlim(profile.start_s / 3600, profile.end_s / 3600)
    ax.set_ylim(0, 101)
    ax.set_xlabel("hour of day")
    ax.set_ylabel("battery %")
    ax.set_title(f"simulate-day '{profile.name}' on {report['board']}: "
                 f"{report['ratio']:.1f}x the always-on battery life")
    ax.legend(loc="lower left", fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
