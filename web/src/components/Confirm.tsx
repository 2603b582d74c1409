// A confirmation dialog: every control that moves power asks first, saying what it will do.
import type { ComponentChildren } from 'preact';

export function Confirm(props: { title: string; children?: ComponentChildren; confirmLabel?: string; busy?: boolean; onConfirm: () => void; onCancel: () => void }) {
  return (
    <div class="modal-backdrop" onClick={props.onCancel}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={props.title} data-testid="confirm-dialog" onClick={(e) => e.stopPropagation()}>
        <h3>{props.title}</h3>
        {props.children}
        <div class="buttons">
          <button data-testid="confirm-cancel" onClick={props.onCancel}>Cancel</button>
          <button class="primary" data-testid="confirm-ok" disabled={props.busy} onClick={props.onConfirm}>{props.confirmLabel ?? 'Confirm'}</button>
        </div>
      </div>
    </div>
  );
}
