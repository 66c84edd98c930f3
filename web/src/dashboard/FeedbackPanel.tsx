import { ThumbDown, ThumbUp } from '../Icons.tsx';
import { getJson } from '../lib/api.ts';
import { type FeedbackEntry, FeedbackList, toEntries } from './FeedbackList.tsx';
import { Panel } from './Panel.tsx';
import { usePanelData } from './usePanelData.ts';

interface Rating {
  rating: 'up' | 'down';
  modelVersion: string;
  at: number;
}

interface Series {
  modelVersion: string;
  buckets: { up: number; down: number }[];
  up: number;
  down: number;
}

const BUCKET_SIZES = [60_000, 5 * 60_000, 15 * 60_000, 3_600_000, 6 * 3_600_000, 86_400_000, 7 * 86_400_000];
const MAX_BUCKETS = 24;
/** A short history still fills the chart's width: the axis shows at least this many buckets. */
const MIN_BUCKETS = 12;

function toRatings(entries: FeedbackEntry[]): Rating[] {
  return entries.flatMap((entry) => {
    const at = Date.parse(entry.createdAt);
    if (Number.isNaN(at)) return [];
    return [{ rating: entry.rating, at, modelVersion: entry.modelVersion }];
  });
}

/** Buckets ratings by time (at most 24 buckets over the data's range), one series per model version. */
export function bucketize(ratings: Rating[]): { start: number; size: number; count: number; series: Series[] } {
  const times = ratings.map((rating) => rating.at);
  const first = Math.min(...times);
  const last = Math.max(...times);
  const size = BUCKET_SIZES.find((candidate) => (last - first) / candidate < MAX_BUCKETS) ?? 30 * 86_400_000;
  const used = Math.floor((last - Math.floor(first / size) * size) / size) + 1;
  const count = Math.max(used, MIN_BUCKETS);
  const start = (Math.floor(last / size) - count + 1) * size;
  const byVersion = new Map<string, Series>();
  for (const rating of ratings) {
    let series = byVersion.get(rating.modelVersion);
    if (!series) {
      series = {
        modelVersion: rating.modelVersion,
        buckets: Array.from({ length: count }, () => ({ up: 0, down: 0 })),
        up: 0,
        down: 0,
      };
      byVersion.set(rating.modelVersion, series);
    }
    const bucket = series.buckets[Math.floor((rating.at - start) / size)];
    if (bucket) bucket[rating.rating]++;
    series[rating.rating]++;
  }
  return {
    start,
    size,
    count,
    series: [...byVersion.values()].sort((a, b) => a.modelVersion.localeCompare(b.modelVersion)),
  };
}

function label(time: number, size: number): string {
  const date = new Date(time);
  return size >= 86_400_000
    ? date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
    : date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** Stacked bars (up above the axis in green, down below it in red) for one model version. */
function SeriesChart({ series, start, size, count }: { series: Series; start: number; size: number; count: number }) {
  const width = 560;
  const height = 120;
  const pad = { left: 34, right: 8, top: 8, bottom: 18 };
  const mid = pad.top + (height - pad.top - pad.bottom) / 2;
  const half = (height - pad.top - pad.bottom) / 2;
  const peak = Math.max(1, ...series.buckets.map((bucket) => Math.max(bucket.up, bucket.down)));
  const step = (width - pad.left - pad.right) / count;
  const barWidth = Math.min(36, Math.max(2, step * 0.7));
  const total = series.up + series.down;
  return (
    <figure className="feedback-series" data-model-version={series.modelVersion}>
      <figcaption>
        <strong>{series.modelVersion}</strong>{' '}
        <span className="good">
          <ThumbUp label="up" /> {series.up}
        </span>{' '}
        <span className="bad">
          <ThumbDown label="down" /> {series.down}
        </span>{' '}
        <span className="muted">{total > 0 ? `${Math.round((100 * series.up) / total)}% positive` : ''}</span>
      </figcaption>
      <svg
        className="chart"
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`Feedback for ${series.modelVersion}: ${series.up} up, ${series.down} down`}
      >
        <line x1={pad.left} x2={width - pad.right} y1={mid} y2={mid} className="axis" />
        <text x={pad.left - 4} y={pad.top + 8} className="tick" textAnchor="end">
          {`▲${peak}`}
        </text>
        <text x={pad.left - 4} y={height - pad.bottom} className="tick" textAnchor="end">
          {`▼${peak}`}
        </text>
        {series.buckets.map((bucket, index) => {
          const x = pad.left + index * step + (step - barWidth) / 2;
          const upHeight = (bucket.up / peak) * half;
          const downHeight = (bucket.down / peak) * half;
          const time = start + index * size;
          return (
            // biome-ignore lint/suspicious/noArrayIndexKey: buckets are positional.
            <g key={index}>
              <title>{`${label(time, size)}: ${bucket.up} up, ${bucket.down} down`}</title>
              {bucket.up > 0 && <rect x={x} y={mid - upHeight} width={barWidth} height={upHeight} className="bar-up" />}
              {bucket.down > 0 && <rect x={x} y={mid} width={barWidth} height={downHeight} className="bar-down" />}
            </g>
          );
        })}
        <text x={pad.left} y={height - 4} className="tick">
          {label(start, size)}
        </text>
        <text x={width - pad.right} y={height - 4} className="tick" textAnchor="end">
          {label(start + (count - 1) * size, size)}
        </text>
      </svg>
    </figure>
  );
}

export function FeedbackPanel({ refreshKey }: { refreshKey: number }) {
  const { data, error, loading } = usePanelData(
    async (signal) => toEntries(await getJson<unknown>('/v1/feedback?limit=1000', signal)),
    refreshKey,
    // Votes publish no bus event (alerts do, and reload this panel too): poll for new ones.
    5_000,
  );
  const ratings = data ? toRatings(data) : [];
  const chart = ratings.length > 0 ? bucketize(ratings) : undefined;
  return (
    <Panel id="feedback" title="Feedback" error={error} loading={loading} wide>
      {chart ? (
        chart.series.map((series) => (
          <SeriesChart
            key={series.modelVersion}
            series={series}
            start={chart.start}
            size={chart.size}
            count={chart.count}
          />
        ))
      ) : (
        <p className="muted">No feedback yet.</p>
      )}
      {data && data.length > 0 && <FeedbackList entries={data} />}
    </Panel>
  );
}
