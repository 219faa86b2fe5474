package proxy

import "time"

// Report is the proxy-wide picture for a status page.
type Report struct {
	Since       time.Time    `json:"since"` // when the proxy was made
	Windows     WindowReport `json:"windows"`
	Connections ConnStates   `json:"connections"`
	// Queue is the admission queue's discipline and state now.
	Queue QueueState `json:"queue"`
}

// Report gives the proxy-wide figures over the last minute, the last 15
// minutes and since start, and the connections by state now.
func (p *Proxy) Report() Report {
	return Report{Since: p.since, Windows: p.windows.report(), Connections: p.Connections(), Queue: p.QueueState()}
}

// QueueState is the admission queue's discipline and its state now:
// normal, queueing or overloaded, the effective timeout, the time spent
// overloaded (docs/queue.md).
func (p *Proxy) QueueState() QueueState { return p.adm.state() }

// Report gives the target's figures over the last minute, the last 15
// minutes and since it was made. A replaced target stays reportable: its
// windows keep moving while it drains and settle 15 minutes after.
func (t *Target) Report() WindowReport { return t.windows.report() }
