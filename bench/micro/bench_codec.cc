// SPDX-License-Identifier: MIT
// Micro-benchmarks of the codec's hot paths: what a producer pays per message to lay its
// frames down (publish template), and what the I/O thread pays per confirm (frame parse +
// basic.ack decode). Run: build/bench/micro/bench_codec (or scripts/bench.sh).
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

extern "C" {
#include "frame.h"
#include "methods.h"
#include "template.h"
}

namespace {

sv_bytes bytes(const char *s)
{
	return sv_bytes{reinterpret_cast<const uint8_t *>(s), static_cast<uint32_t>(strlen(s))};
}

// One message's frames from a template: copy, patch the size, append the body frame(s).
void BM_PublishWrite(benchmark::State &state)
{
	const size_t body_len = static_cast<size_t>(state.range(0));
	std::vector<uint8_t> body(body_len, 0x5a), tpl_buf(1024), out;
	sv_basic_props props{};
	sv_publish_template tpl;
	sv_codec_error err;

	props.flags = SV_PROP_DELIVERY_MODE;
	props.delivery_mode = 2;
	if (sv_publish_template_init(&tpl, tpl_buf.data(), tpl_buf.size(), 1, bytes("amq.direct"),
				     bytes("telemetry.sensor"), false, &props, 131072, &err)) {
		state.SkipWithError(err.reason);
		return;
	}
	out.resize(sv_publish_size(&tpl, body_len));
	for (auto _ : state) {
		sv_publish_write(&tpl, out.data(), body.data(), body_len);
		benchmark::DoNotOptimize(out.data());
		benchmark::ClobberMemory();
	}
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}
BENCHMARK(BM_PublishWrite)->Arg(0)->Arg(16)->Arg(128)->Arg(1024)->Arg(16384)->Arg(262144);

// Parse and decode a buffer of back-to-back basic.ack frames, as a read batch would hold.
void BM_AckDecode(benchmark::State &state)
{
	const int frames = 256;
	std::vector<uint8_t> stream(frames * 21);
	sv_codec_error err;
	size_t len = 0;

	for (int i = 0; i < frames; i++) {
		sv_method m{};
		m.id = SV_BASIC_ACK;
		m.a.basic_ack.delivery_tag = 1000 + static_cast<uint64_t>(i);
		m.a.basic_ack.multiple = i % 2;
		len += sv_frame_put_method(stream.data() + len, stream.size() - len, 1, &m, &err);
	}
	for (auto _ : state) {
		sv_decoded_frame d;
		uint64_t sum = 0;
		size_t pos = 0;
		while (pos < len) {
			ssize_t n = sv_frame_decode(stream.data() + pos, len - pos, 131072, &d, &err);
			if (n <= 0) {
				state.SkipWithError("decode failed");
				return;
			}
			sum += d.u.method.a.basic_ack.delivery_tag;
			pos += static_cast<size_t>(n);
		}
		benchmark::DoNotOptimize(sum);
	}
	state.SetItemsProcessed(state.iterations() * frames);
}
BENCHMARK(BM_AckDecode);

} // namespace

BENCHMARK_MAIN();
