/**
 * The viewer application: configuration from the hospital, sign-in, first-time enrollment of this
 * device, the pinned trust loaded into the decode workers, then the study list, the request for access
 * with a declared purpose, and the study viewer; the auditor area mounts as its own tab. The state lives
 * in memory only: no route, query string or storage holds anything about the clinician or the patient.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { createViewportHost, type ViewportHost } from '../cornerstone/host.ts';
import type { ConsultAnswer, Endpoints } from '../../core/client/federation.ts';
import { AuditArea, auditTabVisible } from '../audit/AuditArea.tsx';
import { forgetIdentity, type DeviceIdentity } from '../device/keystore.ts';
import type { WorkerPool } from '../pipeline/pool.ts';
import type { StudySession } from '../study/session.ts';
import { AccessMarker } from '../ui/AccessMarker.tsx';
import { openedAccess, type Asked, type OpenedAccess } from '../ui/access-model.ts';
import { ConsultDialog, type ConsultTarget } from '../ui/ConsultDialog.tsx';
import { Enrol } from '../ui/Enrol.tsx';
import { ProblemBox } from '../ui/Problem.tsx';
import { SignIn } from '../ui/SignIn.tsx';
import { StudyList } from '../ui/StudyList.tsx';
import { StudyViewer } from '../ui/StudyViewer.tsx';
import {
  ClinicianSession,
  deviceOf,
  loadConfig,
  startPool,
  type SignIn as SignedIn,
} from './clinician.ts';
import { describeProblem, type Problem } from './problems.ts';

type Phase =
  | { readonly kind: 'boot' }
  | { readonly kind: 'no-config'; readonly problem: Problem }
  | { readonly kind: 'signed-out'; readonly endpoints: Endpoints; readonly notice?: Problem }
  | { readonly kind: 'enrol'; readonly signIn: SignedIn; readonly reason?: string }
  | { readonly kind: 'opening'; readonly signIn: SignedIn; readonly problem?: Problem }
  | { readonly kind: 'ready'; readonly session: ClinicianSession };

type Tab = 'studies' | 'viewer' | 'audit';

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: 'boot' });
  const pool = useRef<WorkerPool | undefined>(undefined);

  // The decode workers start with the page, so that they are warm when the first ticket arrives.
  useEffect(() => {
    pool.current = startPool();
    loadConfig().then(
      (endpoints) => setPhase({ kind: 'signed-out', endpoints }),
      (e: unknown) =>
        setPhase({
          kind: 'no-config',
          problem: {
            kind: 'network',
            title: 'The viewer is not configured',
            detail: `${(e as Error).message}.`,
            next: 'retry',
          },
        }),
    );
    const p = pool.current;
    return () => p.terminate();
  }, []);

  const openWith = useCallback(async (signIn: SignedIn, identity: DeviceIdentity) => {
    setPhase({ kind: 'opening', signIn });
    try {
      const session = await ClinicianSession.open(signIn, identity, pool.current!);
      // The handshakes with the producer and the cloud now, not when the clinician waits for images.
      await session.client.connect();
      setPhase({ kind: 'ready', session });
    } catch (e) {
      setPhase({ kind: 'opening', signIn, problem: describeProblem(e, 'start') });
    }
  }, []);

  const signedIn = useCallback(
    async (signIn: SignedIn) => {
      let identity: DeviceIdentity | undefined;
      try {
        identity = await deviceOf(signIn.clinician.id);
      } catch (e) {
        setPhase({
          kind: 'opening',
          signIn,
          problem: {
            kind: 'device',
            title: "This browser's device store cannot be read",
            detail: `${(e as Error).message}. Private windows and some settings disable IndexedDB, which the viewer needs for its device keys.`,
            next: 'retry',
          },
        });
        return;
      }
      if (!identity?.chain.length) setPhase({ kind: 'enrol', signIn });
      else await openWith(signIn, identity);
    },
    [openWith],
  );

  const signOut = useCallback(async (session?: ClinicianSession, notice?: Problem) => {
    await session?.signOut();
    setPhase((p) =>
      p.kind === 'ready' || p.kind === 'enrol' || p.kind === 'opening'
        ? {
            kind: 'signed-out',
            endpoints: p.kind === 'ready' ? p.session.signIn.endpoints : p.signIn.endpoints,
            ...(notice ? { notice } : {}),
          }
        : p,
    );
  }, []);

  switch (phase.kind) {
    case 'boot':
      return <Shell />;
    case 'no-config':
      return (
        <Shell>
          <div className="card">
            <ProblemBox
              problem={phase.problem}
              actions={[{ label: 'Reload', run: () => location.reload() }]}
            />
          </div>
        </Shell>
      );
    case 'signed-out':
      return (
        <Shell>
          <SignIn
            endpoints={phase.endpoints}
            onSignedIn={(s) => void signedIn(s)}
            {...(phase.notice ? { notice: phase.notice } : {})}
          />
        </Shell>
      );
    case 'enrol':
      return (
        <Shell who={phase.signIn.clinician}>
          <Enrol
            signIn={phase.signIn}
            {...(phase.reason ? { reason: phase.reason } : {})}
            onEnrolled={(id) => void openWith(phase.signIn, id)}
            onCancel={() => void signOut()}
          />
        </Shell>
      );
    case 'opening':
      return (
        <Shell who={phase.signIn.clinician}>
          <div className="card">
            {!phase.problem && <p>Loading the federation&apos;s trust and your roles…</p>}
            {phase.problem && (
              <ProblemBox
                problem={phase.problem}
                actions={[
                  ...(phase.problem.next === 'enrol'
                    ? [
                        {
                          label: 'Forget this device and enrol again',
                          run: () =>
                            void forgetIdentity(phase.signIn.clinician.id).then(() =>
                              setPhase({ kind: 'enrol', signIn: phase.signIn }),
                            ),
                        },
                      ]
                    : []),
                  ...(phase.problem.next === 'retry'
                    ? [{ label: 'Try again', run: () => void signedIn(phase.signIn) }]
                    : []),
                  { label: 'Sign out', run: () => void signOut() },
                ]}
              />
            )}
          </div>
        </Shell>
      );
    case 'ready':
      return <Ready session={phase.session} onSignOut={(n) => void signOut(phase.session, n)} />;
  }
}

function Shell({
  who,
  children,
  nav,
  onSignOut,
}: {
  who?: { name: string; role: string; hospital: string };
  children?: React.ReactNode;
  nav?: React.ReactNode;
  onSignOut?: () => void;
}) {
  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">ZTV · zero-trust viewer</span>
        {nav}
        <span className="spacer" />
        {who && (
          <span className="who" data-testid="who">
            {who.name} · {who.role} · {who.hospital}
          </span>
        )}
        {onSignOut && (
          <button onClick={onSignOut} data-testid="sign-out">
            Sign out
          </button>
        )}
      </header>
      {children}
    </div>
  );
}

function Ready({
  session,
  onSignOut,
}: {
  session: ClinicianSession;
  onSignOut: (notice?: Problem) => void;
}) {
  const auditor = auditTabVisible(session.signIn.clinician.role);
  const [tab, setTab] = useState<Tab>(auditor ? 'audit' : 'studies');
  const [target, setTarget] = useState<ConsultTarget>();
  const [lastTarget, setLastTarget] = useState<ConsultTarget>();
  const [study, setStudy] = useState<StudySession>();
  // The kind of access the open study rests on: an emergency one stays marked while it is open.
  const [access, setAccess] = useState<OpenedAccess>();
  // One viewport per sign-in, warmed up now rather than after the first ticket.
  const [host, setHost] = useState<ViewportHost>();
  useEffect(() => {
    const h = createViewportHost();
    setHost(h);
    return () => h.destroy();
  }, []);

  const onTicket = async (answer: ConsultAnswer, asked: Asked) => {
    setLastTarget(target);
    setTarget(undefined);
    setStudy(await session.openStudy(answer));
    setAccess(openedAccess(answer, asked));
    setTab('viewer');
  };
  const close = async () => {
    await session.closeStudy();
    setStudy(undefined);
    setAccess(undefined);
    setTab('studies');
  };
  // An auditor consults no study (the policy lets the role read the audit trail only): no Studies
  // tab that could only fail.
  const tabs: [Tab, string][] = [
    ...(auditor ? [] : ([['studies', 'Studies']] as [Tab, string][])),
    ...(study
      ? ([['viewer', access?.emergency ? 'Viewer · Emergency access' : 'Viewer']] as [
          Tab,
          string,
        ][])
      : []),
    ...(auditor ? ([['audit', 'Audit']] as [Tab, string][]) : []),
  ];
  return (
    <Shell
      who={session.signIn.clinician}
      onSignOut={() => onSignOut()}
      nav={
        <nav role="tablist">
          {tabs.map(([id, label]) => (
            <button
              key={id}
              role="tab"
              aria-selected={tab === id}
              aria-pressed={tab === id}
              data-testid={`tab-${id}`}
              onClick={() => setTab(id)}
            >
              {label}
            </button>
          ))}
        </nav>
      }
    >
      {tab === 'studies' && !auditor && <StudyList session={session} onRequest={setTarget} />}
      {study && host && (
        <div style={{ display: tab === 'viewer' ? 'contents' : 'none' }}>
          {access?.emergency && <AccessMarker access={access} />}
          <StudyViewer
            key={study.id}
            study={study}
            host={host}
            {...(access ? { purpose: access.purpose } : {})}
            onClose={() => void close()}
            onRequestAgain={() => lastTarget && setTarget(lastTarget)}
          />
        </div>
      )}
      {auditor && (
        // Kept mounted while another tab is shown, so that traced files and trails stay on screen.
        <div style={{ display: tab === 'audit' ? 'contents' : 'none' }}>
          <AuditArea
            endpoints={session.signIn.endpoints}
            token={session.signIn.token}
            clinician={session.signIn.clinician}
            device={session.identity}
            trust={session.trust}
          />
        </div>
      )}
      {target && (
        <ConsultDialog
          session={session}
          target={target}
          onTicket={(a, asked) => void onTicket(a, asked)}
          onClose={() => setTarget(undefined)}
        />
      )}
    </Shell>
  );
}
