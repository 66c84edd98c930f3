import { useState } from 'react';
import { formatTime, Panel } from '../dashboard/Panel.tsx';
import { usePanelData } from '../dashboard/usePanelData.ts';
import { getJson } from '../lib/api.ts';
import { type LineageRef, lineageApiPath, lineageHref } from './route.ts';
import { type GraphNode, type LineageGraph, lineageTree, type TreeItem } from './tree.ts';

const DEPTHS = [2, 4, 8, 12];

function NodeLine({ node, relation, arrow }: { node: GraphNode; relation?: string; arrow?: string }) {
  return (
    <span className="lineage-line">
      {relation && (
        <span className="muted small lineage-relation">
          {relation} {arrow}{' '}
        </span>
      )}
      <span className="badge lineage-kind">{node.kind}</span>{' '}
      <a href={lineageHref(node.kind, node.id)} className="lineage-node" data-node={node.key}>
        {node.label}
      </a>{' '}
      {node.status && <span className={`badge state-${node.status}`}>{node.status}</span>}
      {node.at && <span className="muted small"> {formatTime(node.at)}</span>}
    </span>
  );
}

function Tree({ items, arrow }: { items: TreeItem[]; arrow: string }) {
  return (
    <ul className="lineage-tree">
      {items.map((item) => (
        <li key={`${item.edge.from}|${item.edge.to}|${item.edge.relation}`} data-key={item.node.key}>
          <NodeLine node={item.node} relation={item.edge.relation} arrow={arrow} />
          {item.repeated && <span className="muted small"> (shown elsewhere)</span>}
          {item.children.length > 0 && <Tree items={item.children} arrow={arrow} />}
        </li>
      ))}
    </ul>
  );
}

/**
 * The lineage of one node (`#/lineage/<kind>/<id>`): what it came from and what it led to, as
 * two trees; every node links to its own view.
 */
export function LineagePage({ target }: { target: LineageRef | undefined }) {
  const [depth, setDepth] = useState(8);
  const { data, error, loading } = usePanelData<LineageGraph | undefined>(
    (signal) =>
      target ? getJson<LineageGraph>(`${lineageApiPath(target)}?depth=${depth}`, signal) : Promise.resolve(undefined),
    `${target?.kind}/${target?.id}/${depth}`,
  );
  const root = data?.nodes.find((node) => node.key === data.root);
  const sides = data
    ? ([
        ['upstream', 'Where it came from', '←', lineageTree(data, 'upstream')],
        ['downstream', 'What it led to', '→', lineageTree(data, 'downstream')],
      ] as const)
    : [];
  const depthPicker = (
    <label className="small">
      Depth{' '}
      <select value={depth} onChange={(event) => setDepth(Number(event.target.value))}>
        {DEPTHS.map((value) => (
          <option key={value} value={value}>
            {value}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <div className="dashboard">
      <p>
        <a href="#/dashboard">← Dashboard</a>
      </p>
      <Panel
        id="lineage"
        title={target ? `Lineage of ${target.kind} ${target.id}` : 'Lineage'}
        error={
          target ? error : 'No node given: open the lineage of a run, model version or feedback from the dashboard.'
        }
        loading={loading}
        actions={depthPicker}
        wide
      >
        {data && root && (
          <div className="lineage-view" data-root={data.root}>
            <p className="lineage-root">
              <NodeLine node={root} />
            </p>
            {data.truncated && (
              <p className="alert-banner small">
                Some links are left out (too many nodes): open a node further along to see its own lineage.
              </p>
            )}
            {sides.map(([side, title, arrow, items]) => (
              <section key={side} aria-labelledby={`lineage-${side}`} data-side={side}>
                <h3 id={`lineage-${side}`}>{title}</h3>
                {items.length === 0 ? <p className="muted">Nothing recorded.</p> : <Tree items={items} arrow={arrow} />}
              </section>
            ))}
          </div>
        )}
      </Panel>
    </div>
  );
}
