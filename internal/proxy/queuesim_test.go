package proxy

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// A discrete-event simulation of the admission queue: a virtual clock, an
// app of N workers × a service time, and open-loop arrivals following a
// rate schedule. It drives the real admission (enter, abandon, release) and
// the real disciplines through the admission's injected clock, so that a
// design is judged in milliseconds on the scenarios bench/load runs for
// real (docs/queue.md has both).

// simPhase is a constant arrival rate for a while.
type simPhase struct {
	rate float64 // requests per second
	d    time.Duration
}

// simScenario is an app, a queue timeout and an arrival schedule.
type simScenario struct {
	name       string
	workers    int
	service    time.Duration
	timeout    time.Duration
	phases     []simPhase
	poisson    bool // exponential gaps between arrivals instead of even ones
	expService bool // exponential service times (mean service) instead of constant
	longEvery  int  // every longEvery-th request holds its slot 200 × service (a stream)
	seed       int64
}

func (sc simScenario) capacity() float64 { return float64(sc.workers) / sc.service.Seconds() }

// simResult is what bench/load reports for one row.
type simResult struct {
	sent, ok, shed   int
	reasons          map[string]int
	okPerSec         float64
	okP50, okP99     float64 // ms, from arrival to the end of the app's work
	shedP50, shedP99 float64 // ms, from arrival to the 503
	peak             int     // most requests in the app at once
	lost             int     // slots unaccounted for at the end (must be 0)
}

type simEventKind int

const (
	simArrive simEventKind = iota
	simComplete
	simTimeout
)

type simEvent struct {
	at   time.Duration
	seq  int
	kind simEventKind
	req  *simRequest
}

type simEvents []simEvent

func (h simEvents) Len() int { return len(h) }
func (h simEvents) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h simEvents) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *simEvents) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *simEvents) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type simRequest struct {
	arrive  time.Duration
	w       *waiter
	t       *Target
	since   time.Time
	service time.Duration
}

// sim is one run: the clock, the events, the admission under test.
type sim struct {
	sc      simScenario
	rng     *rand.Rand
	epoch   time.Time
	now     time.Duration
	seq     int
	events  simEvents
	adm     *admission
	target  *Target
	waiting []*simRequest
	inApp   int
	last    time.Duration
	ok      []time.Duration
	shed    []time.Duration
	res     simResult
}

func simulate(sc simScenario, disc discipline) simResult {
	s := &sim{sc: sc, rng: rand.New(rand.NewSource(sc.seed + 1)), epoch: time.Unix(1_700_000_000, 0)}
	s.res.reasons = map[string]int{}
	s.adm = &admission{disc: disc, maxQueue: DefaultQueueSize, now: func() time.Time { return s.epoch.Add(s.now) }}
	s.target = &Target{id: "sim", workers: sc.workers, drained: make(chan struct{})}
	s.adm.swap(s.target)
	s.schedule()
	for s.events.Len() > 0 {
		e := heap.Pop(&s.events).(simEvent)
		s.now = e.at
		switch e.kind {
		case simArrive:
			s.arrive(e.req)
		case simComplete:
			s.complete(e.req)
		case simTimeout:
			s.timeout(e.req)
		}
		s.collect()
	}
	return s.result()
}

func (s *sim) push(at time.Duration, kind simEventKind, r *simRequest) {
	s.seq++
	heap.Push(&s.events, simEvent{at: at, seq: s.seq, kind: kind, req: r})
}

// schedule lays out every arrival of the scenario's phases.
func (s *sim) schedule() {
	var start time.Duration
	for _, ph := range s.sc.phases {
		gap := float64(time.Second) / ph.rate
		for i, at := 0, 0.0; at < float64(ph.d); i++ {
			s.push(start+time.Duration(at), simArrive, &simRequest{arrive: start + time.Duration(at)})
			s.res.sent++
			if s.sc.poisson {
				at += s.rng.ExpFloat64() * gap
			} else {
				at = float64(i+1) * gap // from the index: no rounding adds up
			}
		}
		start += ph.d
	}
}

func (s *sim) arrive(r *simRequest) {
	t, w, since, err := s.adm.enter()
	switch {
	case err != nil:
		s.shedAt(r, err)
	case t != nil:
		s.grant(r, t, since)
	default:
		r.w = w
		s.waiting = append(s.waiting, r)
		s.push(s.now+s.sc.timeout, simTimeout, r)
	}
}

func (s *sim) grant(r *simRequest, t *Target, since time.Time) {
	r.t, r.since = t, since
	r.service = s.sc.service
	if s.sc.expService {
		r.service = time.Duration(s.rng.ExpFloat64() * float64(s.sc.service))
	}
	if s.sc.longEvery > 0 && s.rng.Intn(s.sc.longEvery) == 0 {
		r.service = 200 * s.sc.service
	}
	s.inApp++
	s.res.peak = max(s.res.peak, s.inApp)
	s.push(s.now+r.service, simComplete, r)
}

func (s *sim) complete(r *simRequest) {
	s.inApp--
	s.adm.release(r.t, r.since)
	s.ok = append(s.ok, s.now-r.arrive)
	s.last = max(s.last, s.now)
}

func (s *sim) timeout(r *simRequest) {
	if r.w == nil {
		return // granted or shed before its timeout
	}
	i := slices.Index(s.waiting, r)
	s.waiting = slices.Delete(s.waiting, i, i+1)
	w := r.w
	r.w = nil
	s.shedAt(r, s.adm.abandon(w, errQueueTimeout))
}

// collect hands the waiters that were granted a slot or shed since the last
// event their fate, as acquire's select would.
func (s *sim) collect() {
	for i := 0; i < len(s.waiting); i++ {
		r := s.waiting[i]
		if r.w.queued {
			continue
		}
		t := <-r.w.ready
		waiterPool.Put(r.w)
		r.w = nil
		s.waiting = slices.Delete(s.waiting, i, i+1)
		i--
		if t == nil {
			s.shedAt(r, errOverload)
			continue
		}
		s.grant(r, t, s.adm.now())
	}
}

func (s *sim) shedAt(r *simRequest, err error) {
	s.shed = append(s.shed, s.now-r.arrive)
	s.res.reasons[err.Error()]++
	s.last = max(s.last, s.now)
}

func (s *sim) result() simResult {
	res := s.res
	res.ok, res.shed = len(s.ok), len(s.shed)
	if s.last > 0 {
		res.okPerSec = float64(res.ok) / s.last.Seconds()
	}
	res.okP50, res.okP99 = simPct(s.ok, 50), simPct(s.ok, 99)
	res.shedP50, res.shedP99 = simPct(s.shed, 50), simPct(s.shed, 99)
	s.adm.mu.Lock()
	res.lost = s.target.busy + s.adm.waiters.n + len(s.waiting) + s.inApp
	s.adm.mu.Unlock()
	return res
}

// simPct is bench/load's nearest-rank percentile, in milliseconds.
func simPct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	c := slices.Clone(d)
	slices.Sort(c)
	i := max(0, min(int(float64(len(c))*p/100+0.9999)-1, len(c)-1))
	return float64(c[i]) / float64(time.Millisecond)
}

// The scenarios: bench/load's defaults (3 sync workers × 50 ms =
// 60 rps) and a managed app (8 workers × 30 ms).
func simScenarios() []simScenario {
	const s3 = 3
	sc := func(name string, timeout time.Duration, phases ...simPhase) simScenario {
		return simScenario{name: name, workers: s3, service: 50 * time.Millisecond, timeout: timeout, phases: phases}
	}
	list := []simScenario{
		sc("over 3.3×", time.Second, simPhase{200, 10 * time.Second}),
		sc("burst", 3*time.Second, simPhase{200, 500 * time.Millisecond}, simPhase{20, 9500 * time.Millisecond}),
		sc("under", time.Second, simPhase{40, 10 * time.Second}),
		sc("long 1.5×", 3*time.Second, simPhase{90, 60 * time.Second}),
		sc("step .5→2→.5×", 3*time.Second, simPhase{30, 10 * time.Second}, simPhase{120, 10 * time.Second}, simPhase{30, 10 * time.Second}),
		sc("burst 1.5× 5s", 3*time.Second, simPhase{90, 5 * time.Second}, simPhase{20, 10 * time.Second}),
	}
	// The same with random arrivals and service times, and a managed app.
	for _, base := range list[:5] {
		r := base
		r.name += " rnd"
		r.poisson, r.expService, r.seed = true, true, 7
		list = append(list, r)
	}
	list = append(list, simScenario{name: "8×30ms 1.5×", workers: 8, service: 30 * time.Millisecond,
		timeout: 3 * time.Second, phases: []simPhase{{400, 30 * time.Second}}, poisson: true, seed: 3},
		// Under capacity, but one request in 500 is a 6 s stream holding its
		// worker: FIFO sheds nothing, nor may the adaptive queue.
		simScenario{name: "8×30ms .4× streams", workers: 8, service: 30 * time.Millisecond,
			timeout: 3 * time.Second, phases: []simPhase{{100, 60 * time.Second}}, poisson: true, longEvery: 500, seed: 5})
	return list
}

// simDisciplines are the designs compared: the three the proxy has, and
// the alternatives docs/queue.md discusses.
func simDisciplines() []struct {
	name string
	make func(sc simScenario) discipline
} {
	return []struct {
		name string
		make func(sc simScenario) discipline
	}{
		{"fifo", func(sc simScenario) discipline { d, _ := newDiscipline(DisciplineFIFO, sc.timeout); return d }},
		{"lifo", func(sc simScenario) discipline { d, _ := newDiscipline(DisciplineLIFO, sc.timeout); return d }},
		{"adaptive", func(sc simScenario) discipline { return newAdaptive(sc.timeout) }},
		{"codel 5/100ms", func(sc simScenario) discipline { return newCodel(sc.timeout, 5*time.Millisecond, 100*time.Millisecond) }},
		{"codel 50/500ms", func(sc simScenario) discipline {
			return newCodel(sc.timeout, 50*time.Millisecond, 500*time.Millisecond)
		}},
		{"predictive", func(sc simScenario) discipline { return &predictive{timeout: sc.timeout} }},
	}
}

func simTable(scs []simScenario) (string, map[string]map[string]simResult) {
	all := map[string]map[string]simResult{}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tdiscipline\tsent\tok/s\tok p50\tok p99\tshed\tshed p50\tshed p99\tpeak\treasons\t")
	for _, sc := range scs {
		all[sc.name] = map[string]simResult{}
		for _, d := range simDisciplines() {
			r := simulate(sc, d.make(sc))
			all[sc.name][d.name] = r
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.0f\t%.0f\t%d\t%.0f\t%.0f\t%d\t%s\t\n", sc.name, d.name, r.sent, r.okPerSec,
				r.okP50, r.okP99, r.shed, r.shedP50, r.shedP99, r.peak, reasonList(r.reasons))
		}
	}
	tw.Flush()
	return b.String(), all
}

func reasonList(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// TestQueueSimulation runs every design through every scenario (the table
// with -v) and holds the default to the targets against FIFO,
// HAProxy's discipline: under sustained 3.3× overload ok/s ≥ 0.97× FIFO's,
// ok p99 ≤ 300 ms and shed p50 ≤ 50 ms; in the burst at most 1% shed and ok
// p99 ≤ 1.1× FIFO's; under capacity nothing shed and p99 within 5 ms. And
// in every run of every design, no slot is lost or doubled and the app
// never holds more than its workers.
func TestQueueSimulation(t *testing.T) {
	table, all := simTable(simScenarios())
	t.Log("\n" + table)
	for scn, byDisc := range all {
		for dn, r := range byDisc {
			if r.lost != 0 || r.ok+r.shed != r.sent {
				t.Errorf("%s/%s: %d slots or waiters left over; %d ok + %d shed of %d sent", scn, dn, r.lost, r.ok, r.shed, r.sent)
			}
		}
	}
	check := func(scn string, cond bool, format string, args ...any) {
		if !cond {
			t.Errorf("%s: "+format, append([]any{scn}, args...)...)
		}
	}
	for _, suffix := range []string{"", " rnd"} {
		over, fifo := all["over 3.3×"+suffix]["adaptive"], all["over 3.3×"+suffix]["fifo"]
		check("over"+suffix, over.okPerSec >= 0.97*fifo.okPerSec, "ok/s %.1f < 0.97 × FIFO's %.1f", over.okPerSec, fifo.okPerSec)
		check("over"+suffix, over.okP99 <= 300, "ok p99 %.0f ms > 300", over.okP99)
		check("over"+suffix, over.shedP50 <= 50, "shed p50 %.0f ms > 50", over.shedP50)
		check("over"+suffix, over.peak <= 3, "app peak %d > 3 workers", over.peak)
		under, fifo := all["under"+suffix]["adaptive"], all["under"+suffix]["fifo"]
		check("under"+suffix, under.shed == 0, "%d shed", under.shed)
		check("under"+suffix, math.Abs(under.okP99-fifo.okP99) <= 5, "ok p99 %.0f ms, FIFO's %.0f", under.okP99, fifo.okP99)
	}
	burst, fifo := all["burst"]["adaptive"], all["burst"]["fifo"]
	check("burst", burst.shed*100 <= burst.sent, "%d of %d shed", burst.shed, burst.sent)
	check("burst", burst.okP99 <= 1.1*fifo.okP99, "ok p99 %.0f ms > 1.1 × FIFO's %.0f", burst.okP99, fifo.okP99)
	for _, scn := range []string{"burst 1.5× 5s", "8×30ms .4× streams"} {
		a, fifo := all[scn]["adaptive"], all[scn]["fifo"]
		check(scn, a.shed <= fifo.shed, "%d shed where FIFO sheds %d", a.shed, fifo.shed)
	}
}

// codel is the design of "Fail at Scale" (ACM Queue, 2015), for comparison:
// a request queued while the queue has not been empty for interval gets
// target as its timeout (else the queue timeout), and the queue is served
// newest first while that lasts.
type codel struct {
	timeout, target, interval time.Duration
	lastEmpty                 time.Time
	deadline                  map[*waiter]time.Time
}

func newCodel(timeout, target, interval time.Duration) *codel {
	return &codel{timeout: timeout, target: target, interval: interval, deadline: map[*waiter]time.Time{}}
}

func (c *codel) arrive(time.Time, int, bool)   {}
func (c *codel) done(time.Time, time.Duration) {}
func (c *codel) overloaded(now time.Time) bool {
	return !c.lastEmpty.IsZero() && now.Sub(c.lastEmpty) > c.interval
}

func (c *codel) push(l *waitList, w *waiter) {
	now := w.enqueued
	if l.n == 0 {
		c.lastEmpty = now
	}
	c.deadline[w] = now.Add(c.timeout)
	if c.overloaded(now) {
		c.deadline[w] = now.Add(c.target)
	}
	l.pushBack(w)
}

func (c *codel) evict(l *waitList, now time.Time) *waiter {
	for w := l.head; w != nil; w = w.next {
		if !now.Before(c.deadline[w]) {
			l.remove(w)
			c.forget(l, w, now)
			return w
		}
	}
	return nil
}

func (c *codel) forget(l *waitList, w *waiter, now time.Time) {
	delete(c.deadline, w)
	if l.n == 0 {
		c.lastEmpty = now
	}
}

func (c *codel) pop(l *waitList, now time.Time) *waiter {
	w := l.head
	if c.overloaded(now) {
		w = l.tail
	}
	if w != nil {
		l.remove(w)
		c.forget(l, w, now)
	}
	return w
}

func (c *codel) state(time.Time) QueueState { return QueueState{Discipline: "codel"} }

// predictive is FIFO that refuses at once a request that cannot be reached
// before its queue timeout at the measured service rate.
type predictive struct {
	timeout, service time.Duration
	workers          int
}

func (p *predictive) arrive(_ time.Time, workers int, _ bool) { p.workers = workers }
func (p *predictive) push(l *waitList, w *waiter)             { l.pushBack(w) }
func (p *predictive) done(_ time.Time, held time.Duration) {
	if p.service == 0 {
		p.service = held
	}
	p.service += (held - p.service) / 16
}

func (p *predictive) evict(l *waitList, _ time.Time) *waiter {
	if p.service == 0 || time.Duration(l.n)*p.service/time.Duration(p.workers) < p.timeout {
		return nil
	}
	w := l.tail
	l.remove(w)
	return w
}

func (p *predictive) pop(l *waitList, _ time.Time) *waiter {
	w := l.head
	if w != nil {
		l.remove(w)
	}
	return w
}

func (p *predictive) state(time.Time) QueueState { return QueueState{Discipline: "predictive"} }

// TestAdaptiveVariants runs variants of the adaptive discipline's tuning
// (the table with -v; docs/queue.md says which won and why). Each must keep
// every slot.
func TestAdaptiveVariants(t *testing.T) {
	variants := []struct {
		name string
		edit func(*adaptiveTuning)
	}{
		{"default", func(*adaptiveTuning) {}},
		{"evict on FIFO shed only", func(u *adaptiveTuning) { u.evictOnShedOnly = true }},
		{"no deadline guard", func(u *adaptiveTuning) { u.marginServices, u.marginFraction = 0, 0 }},
		{"no gap rule", func(u *adaptiveTuning) { u.gapSlots = 0 }},
		{"one gap is enough", func(u *adaptiveTuning) { u.gapsInARow = 1 }},
		{"margin T/8", func(u *adaptiveTuning) { u.marginFraction = 1.0 / 8 }},
		{"margin T/2", func(u *adaptiveTuning) { u.marginFraction = 0.5 }},
		{"service times unclamped", func(u *adaptiveTuning) { u.serviceClamp = 0 }},
		{"keep 2 per worker", func(u *adaptiveTuning) { u.keepPerWorker = 2 }},
		{"overload at T/2", func(u *adaptiveTuning) { u.overloadAt, u.exitAt = 0.5, 0.375 }},
		{"never LIFO before overload", func(u *adaptiveTuning) { u.interval = time.Hour }},
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tvariant\tok/s\tok p50\tok p99\tshed\tshed p50\tshed p99\t")
	for _, sc := range simScenarios() {
		for _, v := range variants {
			d := newAdaptive(sc.timeout)
			v.edit(&d.tune)
			r := simulate(sc, d)
			if r.lost != 0 || r.ok+r.shed != r.sent || r.peak > sc.workers {
				t.Errorf("%s/%s: %d left over, %d+%d of %d, peak %d", sc.name, v.name, r.lost, r.ok, r.shed, r.sent, r.peak)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.0f\t%.0f\t%d\t%.0f\t%.0f\t\n", sc.name, v.name, r.okPerSec, r.okP50, r.okP99, r.shed, r.shedP50, r.shedP99)
		}
	}
	tw.Flush()
	t.Log("\n" + b.String())
}
