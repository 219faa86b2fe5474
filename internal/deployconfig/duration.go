package deployconfig

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Duration is a time.Duration in a config file: a Go duration string ("2s",
// "500ms", "1m30s") or a JSON number of seconds (2, 0.5). When given it must
// be > 0; absent means the field's default.
type Duration struct {
	time.Duration

	// set records that the file gave a value, so "0s" is refused rather
	// than silently replaced by the default.
	set bool
	// bad holds a value that is not a duration; validate reports it with
	// the field's JSON path, which UnmarshalJSON does not know.
	bad string
}

// UnmarshalJSON accepts a duration string or a number of seconds. It never
// fails on the value itself: validation reports bad values by field name.
func (d *Duration) UnmarshalJSON(b []byte) error {
	*d = Duration{set: true}
	if string(b) == "null" {
		*d = Duration{}
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			d.bad = fmt.Sprintf("%q", s)
		}
		d.Duration = v
		return nil
	}
	var secs float64
	if json.Unmarshal(b, &secs) != nil || math.Abs(secs) > float64(math.MaxInt64)/float64(time.Second) {
		d.bad = string(b)
		return nil
	}
	d.Duration = time.Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration string, e.g. "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}

// isSet reports whether the value came from the file or a literal (non-zero).
func (d Duration) isSet() bool { return d.set || d.Duration != 0 || d.bad != "" }

func (d *Duration) orDefault(def time.Duration) {
	if !d.isSet() {
		d.Duration = def
	}
}

// check returns what is wrong with a given value, or "": it must be > 0,
// at least lo and at most hi (0: no bound); whyLess says why lo.
func (d Duration) check(lo, hi time.Duration, whyLess string) string {
	switch {
	case d.bad != "":
		return fmt.Sprintf("%s is not a duration: write a Go duration like \"2s\", \"500ms\", \"1m30s\", or a number of seconds", d.bad)
	case d.Duration < 0:
		return fmt.Sprintf("%s is negative: must be > 0", d.Duration)
	case d.Duration == 0:
		return "must be > 0 (leave the field out for the default)"
	case d.Duration < lo:
		return fmt.Sprintf("%s is below the minimum of %s: %s", d.Duration, lo, whyLess)
	case hi > 0 && d.Duration > hi:
		return fmt.Sprintf("%s is above the maximum of %s: switchyard waits on it while it runs one operation at a time", d.Duration, hi)
	}
	return ""
}
