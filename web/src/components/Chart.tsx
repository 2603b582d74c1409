// A time-series chart (uPlot). data: [x in unix seconds, ...one array per series]; the chart is
// made once and fed new data with setData, so a live page redraws without rebuilding it.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface SeriesSpec {
  label: string;
  stroke: string;
  fill?: string;
  dash?: number[];
  /** the value's unit, shown in the legend */
  unit?: string;
  /** decimals in the legend; default 1 */
  digits?: number;
}

export function Chart(props: { title: string; data: Array<Array<number | null>>; series: SeriesSpec[]; height?: number; testId?: string; yMin?: number }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!el.current) return;
    const width = Math.max(280, el.current.clientWidth || 600);
    plot.current = new uPlot(
      {
        title: props.title,
        width,
        height: props.height ?? 220,
        scales: { x: { time: true }, y: props.yMin !== undefined ? { range: (_u, _min, max) => [props.yMin!, Math.max(max, props.yMin! + 1) * 1.05] } : {} },
        series: [{}, ...props.series.map((s) => ({ label: s.label, stroke: s.stroke, fill: s.fill, dash: s.dash, width: 2, value: (_u: uPlot, v: number | null) => (v === null ? '–' : `${v.toFixed(s.digits ?? 1)}${s.unit ? ` ${s.unit}` : ''}`) }))],
        axes: [{}, { size: 60 }],
      },
      props.data as uPlot.AlignedData,
      el.current,
    );
    const ro = new ResizeObserver(() => {
      const w = el.current?.clientWidth;
      if (w && plot.current) plot.current.setSize({ width: w, height: props.height ?? 220 });
    });
    ro.observe(el.current);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [props.series.length, props.title]);
  useEffect(() => {
    plot.current?.setData(props.data as uPlot.AlignedData);
  }, [props.data]);
  const points = props.data[0]?.length ?? 0;
  return <div class="chart" data-testid={props.testId} data-points={points} ref={el} />;
}
