package proxy

import "time"

// The adaptive discipline (the default) serves every request that FIFO
// would serve within the queue timeout, for as long as FIFO would, and
// sheds early only once FIFO itself would be shedding. It follows a twin:
// the FIFO queue the same requests would make, reduced to one number, the
// backlog: how long a request arriving now would wait in it. Each request
// that would wait adds one service time of the app divided by its workers;
// the twin's workers take the backlog down by one second per second. From
// the twin it knows:
//
//   - normal: the backlog is short (under an interval), or shrinking.
//     Waiters are served oldest first, as FIFO serves them: under capacity
//     nothing differs from FIFO, and a burst drains in FIFO's order.
//   - queueing: the backlog is at least an interval and grew over the last
//     one. Waiters are served newest first: while it is still unknown
//     whether this is a burst or the start of a sustained overload, the
//     requests served are served fast. The older ones keep their place and
//     their timeout; they are served oldest first as soon as the queue
//     drains (two long gaps between arrivals in a row, or the backlog
//     shrinking), and a waiter whose timeout comes near is served before
//     newer ones. Nobody is shed early.
//   - overloaded: the backlog has reached the queue timeout: FIFO would
//     shed every request arriving now. While it lasts, each arrival sheds
//     the oldest waiters beyond one per worker: the newest are served
//     within about one service time, the rest get their 503 at once rather
//     than after the whole queue timeout, and the app stays busy. The state
//     ends when the backlog falls under three quarters of the queue
//     timeout.
//
// The only setting is the queue timeout. The app's service time is
// measured (how long a worker slot is held), and the rest derives from the
// two (adaptiveTuning). docs/queue.md says why each constant is what it
// is, with the simulated and measured alternatives.
type adaptive struct {
	timeout time.Duration // the queue timeout: the longest wait, FIFO's and ours
	tune    adaptiveTuning

	service time.Duration // moving average of slot hold times; 0 until the first
	workers int           // the active target's, at the last arrival
	last    time.Time     // the latest arrival
	gaps    int           // long gaps in a row before it

	// The FIFO twin.
	backlog  time.Duration // how long an arrival at 'at' would wait in FIFO
	at       time.Time
	shedding bool // FIFO would shed the latest arrival

	// The backlog's trend over the last interval.
	mark    time.Duration // the backlog at markAt
	markAt  time.Time
	growing bool

	overloaded    bool
	since         time.Time     // when the current overload began
	overloadedFor time.Duration // the overloads that ended
	overloads     uint64
}

// adaptiveTuning are the adaptive discipline's constants, in one place
// (defaultTuning); the simulation tries others. docs/queue.md gives the
// reasons and the figures.
type adaptiveTuning struct {
	// interval is the shortest span over which the backlog's trend is
	// judged, and the backlog that counts as a standing queue.
	interval time.Duration
	// trendSlots is the number of slot hand-overs (service time ÷ workers
	// each) an interval spans at least, so that a slow app's trend is not
	// judged on one or two arrivals.
	trendSlots int
	// gapSlots and gapsInARow: gapsInARow gaps in a row between arrivals,
	// each longer than gapSlots slot hand-overs, say that requests now
	// come slower than the app serves them: the queue drains, oldest first
	// (gapSlots 0: never).
	gapSlots   float64
	gapsInARow int
	// marginServices and marginFraction: a waiter whose queue timeout is
	// less than this many service times away, or this fraction of the
	// queue timeout (the larger), is served before newer ones (0 and 0:
	// never).
	marginServices int
	marginFraction float64
	// keepPerWorker is how many waiters per worker an overloaded queue
	// keeps: the newest.
	keepPerWorker int
	// overloadAt and exitAt are the fractions of the queue timeout the
	// backlog must reach to enter the overloaded state, and fall under to
	// leave it.
	overloadAt, exitAt float64
	// evictOnShedOnly sheds waiters only at an arrival FIFO would shed,
	// not at every arrival while overloaded.
	evictOnShedOnly bool
	// serviceWeight and serviceClamp: the service time is a moving mean
	// (capacity is workers ÷ mean service time), each new time weighing
	// 1/serviceWeight and counted as at most serviceClamp times the mean so
	// far, and at most the queue timeout: one streamed response holding
	// its slot for minutes must not make every queue look overloaded (0:
	// no clamp).
	serviceWeight int
	serviceClamp  float64
}

var defaultTuning = adaptiveTuning{
	interval:       100 * time.Millisecond, // CoDel's interval
	trendSlots:     8,
	gapSlots:       2.5,
	gapsInARow:     2,
	marginServices: 2,
	marginFraction: 1.0 / 4,
	keepPerWorker:  1,
	overloadAt:     1,
	exitAt:         0.75,
	serviceWeight:  16,
	serviceClamp:   4,
}

func newAdaptive(timeout time.Duration) *adaptive {
	return &adaptive{timeout: timeout, tune: defaultTuning}
}

func (a *adaptive) arrive(now time.Time, workers int, free bool) {
	a.workers = max(workers, 1)
	a.advance(now)
	a.gap(now, true)
	a.last = now
	a.shedding = false
	if a.service == 0 || (free && a.backlog == 0) {
		return // nothing measured yet, or FIFO would not make it wait either
	}
	if a.backlog >= a.limit() {
		a.shedding = true
	} else {
		a.backlog += a.slot()
	}
	a.trend(now)
	a.judge(now)
}

// slot is the time between two slot hand-overs of a busy app.
func (a *adaptive) slot() time.Duration { return a.service / time.Duration(max(a.workers, 1)) }

// limit is the backlog at which FIFO sheds (overloadAt of the timeout).
func (a *adaptive) limit() time.Duration {
	return time.Duration(float64(a.timeout) * a.tune.overloadAt)
}

// advance moves the twin to now: its workers have taken the backlog down.
func (a *adaptive) advance(now time.Time) {
	if d := now.Sub(a.at); d > 0 {
		a.backlog = max(0, a.backlog-d)
		a.at = now
	}
}

// gap ends a growth after gapsInARow long gaps between arrivals (the
// current one, at a pop, counts): requests now come slower than the app
// serves them. At an arrival (arriving) the gap ends and is counted.
func (a *adaptive) gap(now time.Time, arriving bool) {
	if a.tune.gapSlots <= 0 {
		return
	}
	long := float64(now.Sub(a.last)) > a.tune.gapSlots*float64(a.slot())
	n := a.gaps
	if long {
		n++
	}
	if arriving {
		a.gaps = n
		if !long {
			a.gaps = 0
		}
	}
	if a.growing && n >= a.tune.gapsInARow {
		a.growing = false
		a.mark, a.markAt = a.backlog, now
	}
}

// trend judges, once an interval, whether the backlog grew over the last.
func (a *adaptive) trend(now time.Time) {
	if now.Sub(a.markAt) >= a.interval() {
		a.growing = a.backlog > a.mark
		a.mark, a.markAt = a.backlog, now
	}
}

// judge enters or leaves the overloaded state.
func (a *adaptive) judge(now time.Time) {
	switch {
	case !a.overloaded && a.backlog >= a.limit():
		a.overloaded, a.since = true, now
		a.overloads++
	case a.overloaded && a.backlog < time.Duration(float64(a.timeout)*a.tune.exitAt):
		a.overloaded = false
		a.overloadedFor += now.Sub(a.since)
	}
}

func (a *adaptive) interval() time.Duration {
	return max(a.tune.interval, time.Duration(a.tune.trendSlots)*a.slot())
}

func (a *adaptive) margin() time.Duration {
	return max(time.Duration(a.tune.marginServices)*a.service, time.Duration(float64(a.timeout)*a.tune.marginFraction))
}

func (*adaptive) push(l *waitList, w *waiter) { l.pushBack(w) }

// evict sheds, while the queue is overloaded, the oldest waiters beyond
// keepPerWorker per worker.
func (a *adaptive) evict(l *waitList, _ time.Time) *waiter {
	if !(a.overloaded && (a.shedding || !a.tune.evictOnShedOnly)) || l.n <= a.tune.keepPerWorker*a.workers {
		return nil
	}
	w := l.head
	l.remove(w)
	return w
}

func (a *adaptive) pop(l *waitList, now time.Time) *waiter {
	w := l.head
	if w == nil {
		return nil
	}
	a.advance(now)
	a.gap(now, false)
	a.trend(now)
	a.judge(now)
	if a.newestFirst(now, w) {
		w = l.tail
	}
	l.remove(w)
	return w
}

// newestFirst says whether the next slot goes to the newest waiter rather
// than to the oldest; never when the oldest's queue timeout is near.
func (a *adaptive) newestFirst(now time.Time, oldest *waiter) bool {
	if m := a.margin(); m > 0 && now.Sub(oldest.enqueued) >= a.timeout-m {
		return false
	}
	return a.overloaded || (a.growing && a.backlog >= a.interval())
}

func (a *adaptive) done(_ time.Time, held time.Duration) {
	held = max(held, time.Microsecond)
	if a.tune.serviceClamp > 0 {
		held = min(held, a.timeout)
		if a.service > 0 {
			held = min(held, time.Duration(a.tune.serviceClamp*float64(a.service)))
		}
	}
	if a.service == 0 {
		a.service = held
		return
	}
	a.service = max(a.service+(held-a.service)/time.Duration(a.tune.serviceWeight), time.Microsecond)
}

func (a *adaptive) state(now time.Time) QueueState {
	a.advance(now)
	a.judge(now)
	s := QueueState{
		Discipline: DisciplineAdaptive, State: StateNormal,
		TimeoutMs: ms(a.timeout), EffectiveTimeoutMs: ms(a.timeout),
		OverloadedSeconds: a.overloadedFor.Seconds(), Overloads: a.overloads,
		ServiceMs: ms(a.service), BacklogMs: ms(a.backlog),
	}
	switch {
	case a.overloaded:
		s.State = StateOverloaded
		s.EffectiveTimeoutMs = ms(min(a.timeout, a.service))
		s.OverloadedSeconds += now.Sub(a.since).Seconds()
	case a.backlog >= a.interval():
		s.State = StateQueueing
	}
	return s
}
