package deployconfig

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// memoryUnits are binary multiples, as Docker reads "512m" (512 MiB).
var memoryUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
}

// parseMemory parses "268435456", "512m", "1g", "1.5GiB" into bytes.
func parseMemory(s string) (int64, error) {
	lower := strings.ToLower(strings.TrimSpace(s))
	i := strings.LastIndexAny(lower, "0123456789.") + 1
	num, unit := lower[:i], lower[i:]
	mult, ok := memoryUnits[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("%q is not a size: write bytes or a number with k, m, g or t (binary units), e.g. \"512m\"", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a positive size: e.g. \"512m\" or \"1g\"", s)
	}
	bytes := v * mult
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(bytes), nil
}
