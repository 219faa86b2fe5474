package proxy

// BucketUpperMicros is the largest value (µs) that bucket i of a
// HistogramSnapshot holds, so that other formats (Prometheus' buckets) can be
// derived from it.
func BucketUpperMicros(i int) uint64 { return bucketUpper(i) }
