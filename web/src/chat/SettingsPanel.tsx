import { useEffect, useState } from 'react';
import { describeFailure, getJson } from '../lib/api.ts';
import type { ChatSettings } from './types.ts';

interface ModelList {
  data: { id: string; model_version?: string | null }[];
}

interface Props {
  settings: ChatSettings;
  onChange: (settings: ChatSettings) => void;
}

function Slider(props: {
  id: string;
  label: string;
  value: number;
  min: number;
  max: number;
  step: number;
  onChange: (value: number) => void;
}) {
  return (
    <div className="field">
      <label htmlFor={props.id}>
        {props.label} <output htmlFor={props.id}>{props.value}</output>
      </label>
      <input
        id={props.id}
        type="range"
        min={props.min}
        max={props.max}
        step={props.step}
        value={props.value}
        onChange={(event) => props.onChange(Number(event.target.value))}
      />
    </div>
  );
}

/** Generation settings, as the seed's sidebar sliders; the model list comes from `GET /v1/models`. */
export function SettingsPanel({ settings, onChange }: Props) {
  const [models, setModels] = useState<ModelList['data']>([]);
  const [modelError, setModelError] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    getJson<ModelList>('/v1/models', controller.signal).then(
      (list) => setModels(list.data),
      (error: unknown) => {
        if (!controller.signal.aborted) setModelError(describeFailure(error));
      },
    );
    return () => controller.abort();
  }, []);

  const set = <K extends keyof ChatSettings>(key: K, value: ChatSettings[K]) => onChange({ ...settings, [key]: value });

  return (
    <div className="settings">
      <h2>Settings</h2>
      <div className="field">
        <label htmlFor="model">Model version</label>
        <select id="model" value={settings.model} onChange={(event) => set('model', event.target.value)}>
          <option value="">Server default</option>
          {models.map((model) => (
            <option key={model.id} value={model.id}>
              {model.id}
              {model.model_version ? ` (version ${model.model_version})` : ''}
            </option>
          ))}
          {settings.model && !models.some((model) => model.id === settings.model) && (
            <option value={settings.model}>{settings.model}</option>
          )}
        </select>
        {modelError && <p className="muted small">Models: {modelError}</p>}
      </div>
      <Slider
        id="temperature"
        label="Temperature"
        value={settings.temperature}
        min={0}
        max={2}
        step={0.05}
        onChange={(value) => set('temperature', value)}
      />
      <Slider
        id="top-p"
        label="Top p"
        value={settings.topP}
        min={0.05}
        max={1}
        step={0.05}
        onChange={(value) => set('topP', value)}
      />
      <div className="field">
        <label htmlFor="max-tokens">Max tokens</label>
        <input
          id="max-tokens"
          type="number"
          min={1}
          max={32768}
          value={settings.maxTokens}
          onChange={(event) => set('maxTokens', Math.max(1, Math.floor(Number(event.target.value) || 1)))}
        />
      </div>
    </div>
  );
}
