// A time-series graph drawn by uPlot: made once, then fed new columns.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface Line {
  label: string;
  color: string;
  /** Dashed, for limits. */
  dash?: boolean;
}

/** A CSS colour variable's value (a canvas cannot use `var(--x)`). */
function cssColor(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function Chart({ title, lines, data, format, testid, now, floor }: {
  title: string;
  lines: Line[];
  /** [times, ...one column per line] */
  data: (number | null)[][];
  format: (v: number) => string;
  testid: string;
  /** The right edge of the x axis, seconds. */
  now: number;
  /** The y axis reaches at least this high, so a quiet graph has sensible ticks. */
  floor: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current!;
    const muted = cssColor("--muted");
    const grid = cssColor("--grid");
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 150,
      legend: { show: true, live: false },
      cursor: { y: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(floor, max * 1.1)] } },
      axes: [axis, { ...axis, size: 76, values: (_u, v) => v.map(format) }],
      series: [
        {},
        ...lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 1.5,
          dash: l.dash ? [6, 4] : undefined,
          fill: l.dash ? undefined : l.color + "22",
          value: (_u: uPlot, v: number | null) => (v == null ? "–" : format(v)),
          points: { show: false },
        })),
      ],
    };
    plot.current = new uPlot(opts, data as uPlot.AlignedData, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 150 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    const p = plot.current;
    if (!p) return;
    p.setData(data as uPlot.AlignedData, false);
    // From the first sample (at least a minute back) to now, at most the
    // ten minutes berthd keeps: a new app's graph fills its width.
    const first = (data[0]?.[0] as number | undefined) ?? now;
    p.setScale("x", { min: Math.max(now - 600, Math.min(first, now - 60)), max: now });
  }, [data, now]);

  const points = data[0]?.length ?? 0;
  return (
    <figure class="chart" data-testid={testid} data-points={points}>
      <figcaption>{title}</figcaption>
      <div ref={box} />
    </figure>
  );
}
