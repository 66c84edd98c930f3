export interface DagStep {
  name: string;
  status: string;
  dependsOn: string[];
  durationMs: number | undefined;
}

interface Props {
  steps: DagStep[];
  selected: string | undefined;
  onSelect: (name: string) => void;
}

const NODE_WIDTH = 150;
const NODE_HEIGHT = 44;
const COLUMN_GAP = 50;
const ROW_GAP = 16;

/** Column = longest chain of dependencies before the step, so every edge points right. */
function layout(steps: DagStep[]): Map<string, { x: number; y: number }> {
  const byName = new Map(steps.map((step) => [step.name, step]));
  const depth = new Map<string, number>();
  const depthOf = (name: string, seen: Set<string>): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (seen.has(name)) return 0;
    seen.add(name);
    const parents = (byName.get(name)?.dependsOn ?? []).filter((parent) => byName.has(parent));
    const value = parents.length === 0 ? 0 : 1 + Math.max(...parents.map((parent) => depthOf(parent, seen)));
    depth.set(name, value);
    return value;
  };
  const rows = new Map<number, number>();
  const positions = new Map<string, { x: number; y: number }>();
  for (const step of steps) {
    const column = depthOf(step.name, new Set());
    const row = rows.get(column) ?? 0;
    rows.set(column, row + 1);
    positions.set(step.name, { x: 8 + column * (NODE_WIDTH + COLUMN_GAP), y: 8 + row * (NODE_HEIGHT + ROW_GAP) });
  }
  return positions;
}

function durationLabel(ms: number | undefined): string {
  if (ms === undefined) return '';
  return ms < 1000
    ? `${Math.round(ms)} ms`
    : ms < 60_000
      ? `${(ms / 1000).toFixed(1)} s`
      : `${Math.round(ms / 60_000)} min`;
}

/** The pipeline's steps as a DAG, coloured by state; a step is a keyboard-focusable button. */
export function DagView({ steps, selected, onSelect }: Props) {
  const positions = layout(steps);
  const width = Math.max(...[...positions.values()].map((point) => point.x + NODE_WIDTH + 8), 200);
  const height = Math.max(...[...positions.values()].map((point) => point.y + NODE_HEIGHT + 8), 60);
  return (
    <svg
      className="dag"
      viewBox={`0 0 ${width} ${height}`}
      style={{ maxWidth: width }}
      role="img"
      aria-label="Pipeline steps"
    >
      {steps.flatMap((step) =>
        step.dependsOn.flatMap((parent) => {
          const from = positions.get(parent);
          const to = positions.get(step.name);
          if (!from || !to) return [];
          const x1 = from.x + NODE_WIDTH;
          const y1 = from.y + NODE_HEIGHT / 2;
          const x2 = to.x;
          const y2 = to.y + NODE_HEIGHT / 2;
          const bend = (x2 - x1) / 2;
          return [
            <path
              key={`${parent}->${step.name}`}
              d={`M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`}
              className="dag-edge"
              markerEnd="url(#dag-arrow)"
            />,
          ];
        }),
      )}
      <defs>
        <marker id="dag-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">
          <path d="M0,0 L10,5 L0,10 z" className="dag-arrow" />
        </marker>
      </defs>
      {steps.map((step) => {
        const point = positions.get(step.name);
        if (!point) return null;
        return (
          // biome-ignore lint/a11y/useSemanticElements: an SVG node cannot be a <button>; role and keys make it one.
          <g
            key={step.name}
            transform={`translate(${point.x},${point.y})`}
            className={`dag-node state-${step.status}${selected === step.name ? ' selected' : ''}`}
            data-step={step.name}
            data-status={step.status}
            role="button"
            tabIndex={0}
            aria-pressed={selected === step.name}
            aria-label={`${step.name}: ${step.status}`}
            onClick={() => onSelect(step.name)}
            onKeyDown={(event) => {
              if (event.key === 'Enter' || event.key === ' ') {
                event.preventDefault();
                onSelect(step.name);
              }
            }}
          >
            <rect width={NODE_WIDTH} height={NODE_HEIGHT} rx={6} />
            <text x={8} y={18} className="dag-name">
              {step.name.length > 20 ? `${step.name.slice(0, 19)}…` : step.name}
            </text>
            <text x={8} y={35} className="dag-state">
              {step.status} {durationLabel(step.durationMs)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
