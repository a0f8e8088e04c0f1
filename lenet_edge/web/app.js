// lenet-edge page: draw a digit, the server prepares the 28×28 MNIST-style digit (the same code as
// `lenet-edge predict`), and the bundle's own model file answers here, in WebAssembly: onnxruntime-web for
// .onnx, LiteRT.js for .tflite. window.lenetEdge is what the tests and `lenet-edge bench` drive.

const $ = (id) => document.getElementById(id);
const PIXELS = 28 * 28;
const LATENCY_RUNS = 30;

// One entry per in-browser runtime: init() once, load(model) -> {prepare(input, n) -> {call, dispose}, release}.
// call() is the runtime's inference call alone; the input is already in place.
const runtimes = {
  "onnxruntime-web": {
    label: "onnxruntime-web (WebAssembly)",
    async init() {
      if (!window.ort) throw new Error("onnxruntime-web did not load");
      ort.env.wasm.wasmPaths = new URL("/vendor/", location.href).href; // absolute: the .mjs is imported
      ort.env.wasm.numThreads = 1;
    },
    async load(model) {
      const session = await ort.InferenceSession.create(model.url, { executionProviders: ["wasm"] });
      const [inputName] = session.inputNames;
      const [outputName] = session.outputNames;
      return {
        prepare(input, n) {
          const feeds = { [inputName]: new ort.Tensor(model.input.dtype, input, [n, 28, 28, 1]) };
          return { call: async () => (await session.run(feeds))[outputName].data, dispose() {} };
        },
        release: () => session.release(),
      };
    },
  },
  "litert.js": {
    label: "LiteRT.js (WebAssembly, XNNPACK)",
    lib: null,
    async init() {
      this.lib = await import("/vendor/litertjs/index.js");
      await this.lib.loadLiteRt(new URL("/vendor/litertjs/wasm/", location.href).href);
    },
    async load(model) {
      const { loadAndCompile, Tensor } = this.lib;
      const compiled = await loadAndCompile(model.url, { accelerator: "wasm" });
      return {
        prepare(input, n) {
          if (n !== 1) throw new Error("LiteRT.js takes one digit per call (batch fixed to 1)");
          const tensor = new Tensor(input, [1, 28, 28, 1]);
          const call = async () => {
            const outputs = await compiled.run(tensor);
            const data = outputs[0].toTypedArray().slice();
            for (const output of outputs) output.delete();
            return data;
          };
          return { call, dispose: () => tensor.delete() };
        },
        release: () => compiled.delete(),
      };
    },
  },
};

const state = { info: null, model: null, loaded: null, ready: new Set(), drawn: 0, answered: 0, digit: null };

// ---- helpers ----------------------------------------------------------------------------------------------
function fromB64(text) {
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

function toB64(typed) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function typedFrom(bytes, dtype) {
  const copy = bytes.slice();
  return dtype === "float32" ? new Float32Array(copy.buffer) : dtype === "int8" ? new Int8Array(copy.buffer) : copy;
}

// Raw pixels to the model's input dtype: the app contract says no scaling (uint8 for the int8 TFLite).
function encode(pixels, dtype) {
  return dtype === "uint8" ? Uint8Array.from(pixels) : Float32Array.from(pixels);
}

// The output tensor as probabilities, dequantized with the model's own scale and zero point.
function decode(raw, tensor) {
  if (tensor.scale == null) return Float32Array.from(raw);
  return Float32Array.from(raw, (q) => (q - tensor.zero_point) * tensor.scale);
}

function argmax(values, offset = 0, count = values.length) {
  let best = 0;
  for (let i = 1; i < count; i++) if (values[offset + i] > values[offset + best]) best = i;
  return best;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function getJSON(url) {
  const response = await fetch(url);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ?? `${url}: HTTP ${response.status}`);
  return data;
}

// ---- models -----------------------------------------------------------------------------------------------
async function select(format) {
  const model = state.info.models.find((m) => m.format === format);
  if (!model) throw new Error(`${format}: not in this bundle`);
  if (model.why_not) throw new Error(`${model.file} cannot run in the browser: ${model.why_not}`);
  const runtime = runtimes[model.runtime];
  status(`loading ${model.file} in ${runtime.label}…`);
  state.loaded?.release();
  state.loaded = null;
  const start = performance.now(); // load time includes the runtime's own WebAssembly on first use (cold page)
  if (!state.ready.has(model.runtime)) {
    await runtime.init();
    state.ready.add(model.runtime);
  }
  const loaded = await runtime.load(model);
  const loadMs = performance.now() - start;
  const { call, dispose } = loaded.prepare(encode(new Uint8Array(PIXELS), model.input.dtype), 1);
  const first = performance.now();
  await call();
  const firstMs = performance.now() - first;
  dispose();
  Object.assign(state, { model, loaded });
  $("model").value = format;
  $("model-note").textContent = `${model.description}. Runs in ${runtime.label} ${state.info.runtimes[model.runtime] ?? ""}, 1 thread; ` +
    `loaded in ${loadMs.toFixed(1)} ms, first inference ${firstMs.toFixed(2)} ms.` +
    (model.note ? ` ${model.note}.` : "");
  status(`${model.file} ready in ${runtime.label}`);
  if (state.digit) await answer(state.digit);
  return { load_ms: loadMs, first_ms: firstMs, input: model.input, output: model.output, runtime: model.runtime };
}

// Run the current model on n raw digits (Uint8Array n×784), one call per digit; the raw outputs, concatenated.
async function runDigits(pixels, n) {
  const { model, loaded } = state;
  const chunks = [];
  const times = [];
  for (let i = 0; i < n; i++) {
    const { call, dispose } = loaded.prepare(encode(pixels.subarray(i * PIXELS, (i + 1) * PIXELS), model.input.dtype), 1);
    const start = performance.now();
    chunks.push(await call());
    times.push((performance.now() - start) * 1e3);
    dispose();
  }
  const out = new chunks[0].constructor(n * 10);
  chunks.forEach((chunk, i) => out.set(chunk, i * 10));
  return { outputs: out, times };
}

// ---- drawing ----------------------------------------------------------------------------------------------
function setUpPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  let drawing = false;
  const at = (event) => {
    const box = pad.getBoundingClientRect();
    return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
  };
  pad.addEventListener("pointerdown", (event) => {
    drawing = true;
    pad.setPointerCapture(event.pointerId);
    Object.assign(ctx, { lineWidth: Number($("pen").value), lineCap: "round", lineJoin: "round", strokeStyle: "#111" });
    const [x, y] = at(event);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x, y); // a tap leaves a dot
    ctx.stroke();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = at(event);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    state.drawn += 1;
    prepareDrawing(state.drawn);
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    ctx.clearRect(0, 0, pad.width, pad.height);
    state.digit = null;
    state.answered = ++state.drawn;
    $("seen").getContext("2d").clearRect(0, 0, 28, 28);
    showAnswer(null);
  });
}

// The drawing (transparent canvas, dark strokes) to the server's MNIST preparation, then to the model.
async function prepareDrawing(version) {
  // toDataURL, not toBlob: headless Chromium holds toBlob's callback for about a second
  const png = fromB64($("pad").toDataURL("image/png").split(",")[1]);
  try {
    const response = await fetch("/api/prepare", { method: "POST", body: png, headers: { "Content-Type": "image/png" } });
    const data = await response.json();
    if (version !== state.drawn) return; // a newer stroke is on its way
    if (!response.ok) throw new Error(data.error);
    state.digit = Uint8Array.from(data.digit);
    showSeen(state.digit);
    await answer(state.digit);
  } catch (error) {
    status(String(error.message ?? error), true);
  } finally {
    if (version === state.drawn) state.answered = version;
  }
}

function showSeen(digit) {
  const image = new ImageData(28, 28);
  digit.forEach((v, i) => image.data.set([v, v, v, 255], i * 4));
  $("seen").getContext("2d").putImageData(image, 0, 0);
}

// One answer for a 28×28 digit, then the median of LATENCY_RUNS more calls on it.
async function answer(digit) {
  const { model, loaded } = state;
  if (!loaded) return;
  const { call, dispose } = loaded.prepare(encode(digit, model.input.dtype), 1);
  try {
    const raw = await call();
    const times = [];
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const start = performance.now();
      await call();
      times.push((performance.now() - start) * 1e3);
    }
    showAnswer(decode(raw, model.output), median(times));
  } finally {
    dispose();
  }
}

function showAnswer(probabilities, p50us) {
  const bars = $("bars");
  bars.replaceChildren();
  if (!probabilities) {
    $("digit").textContent = "–";
    $("digit").dataset.label = "";
    $("confidence").textContent = "draw a digit";
    $("latency").textContent = "";
    return;
  }
  const label = argmax(probabilities);
  $("digit").textContent = String(label);
  $("digit").dataset.label = String(label);
  $("confidence").textContent = `${(100 * probabilities[label]).toFixed(1)}% sure`;
  probabilities.forEach((p, d) => {
    const row = document.createElement("div");
    row.className = d === label ? "bar top" : "bar";
    row.innerHTML = `<span>${d}</span><div class="track"><div class="fill" style="width:${(100 * p).toFixed(1)}%"></div></div><span>${(100 * p).toFixed(1)}%</span>`;
    bars.append(row);
  });
  $("latency").textContent = `in-browser inference: ${p50us.toFixed(0)} µs (median of ${LATENCY_RUNS} calls, ` +
    `${runtimes[state.model.runtime].label}, 1 thread)`;
}

// ---- test digits ------------------------------------------------------------------------------------------
async function runTestDigits(n) {
  const { model } = state;
  status(`running ${n} test digits in ${runtimes[model.runtime].label}…`);
  const [test, native] = await Promise.all([
    getJSON(`/api/test-digits?n=${n}`),
    getJSON(`/api/native?file=${encodeURIComponent(model.file)}&n=${n}`),
  ]);
  const { outputs, times } = await runDigits(fromB64(test.digits), test.count);
  const nativeOutputs = typedFrom(fromB64(native.outputs), native.dtype);
  let correct = 0;
  let agree = 0;
  let maxDiff = 0;
  for (let i = 0; i < test.count; i++) {
    const label = argmax(outputs, i * 10, 10);
    correct += label === test.labels[i];
    agree += label === argmax(nativeOutputs, i * 10, 10);
    for (let k = i * 10; k < i * 10 + 10; k++) maxDiff = Math.max(maxDiff, Math.abs(outputs[k] - nativeOutputs[k]));
  }
  const steps = model.output.scale != null;
  const result = {
    format: model.format, runtime: model.runtime, native: native.runtime, count: test.count,
    accuracy: correct / test.count, agreement: agree / test.count, max_diff: maxDiff,
    max_diff_unit: steps ? "quantization steps" : "probability", p50_us: median(times),
    outputs: toB64(outputs), dtype: model.output.dtype,
  };
  const diff = maxDiff === 0 ? "0 (bit-identical)" : steps ?
    `${maxDiff} step${maxDiff === 1 ? "" : "s"} (${(maxDiff * model.output.scale).toExponential(1)})` : maxDiff.toExponential(1);
  $("test-result").textContent = `${test.count} test digits in ${runtimes[model.runtime].label}: accuracy ` +
    `${(100 * result.accuracy).toFixed(2)}% · same answer as native ${native.runtime} on ${agree}/${test.count} ` +
    `(${(100 * result.agreement).toFixed(2)}%) · max |Δ| vs native ${diff} · median ${result.p50_us.toFixed(0)} µs per digit`;
  status(`${model.file}: ${test.count} test digits done`);
  return result;
}

// ---- for lenet-edge's runner (bench) ----------------------------------------------------------------------
async function infer(b64, n) {
  const { outputs } = await runDigits(fromB64(b64), n);
  return toB64(outputs);
}

// Time the runtime's call on a batch of n digits: a warm-up (2 s at least), then blocks of calls for `seconds` (at least
// minBlocks). performance.now() moves in 5 µs steps here, so each block lasts at least 1 ms and gives one
// sample: its mean call time in µs.
async function time(b64, n, seconds, minBlocks = 20) {
  const { model, loaded } = state;
  const { call, dispose } = loaded.prepare(encode(fromB64(b64), model.input.dtype), n);
  try {
    const warmStart = performance.now();
    let warmCalls = 0;
    // two seconds at least: V8 runs WebAssembly from a baseline compiler first and optimizes hot code later;
    // measured, calls settle after about 1.5 s
    while (performance.now() < warmStart + Math.max(2000, (seconds * 1e3) / 5) || warmCalls < 5) {
      await call();
      warmCalls += 1;
    }
    const probeStart = performance.now(); // the warm-up's first calls are slow: size blocks on warm calls
    for (let i = 0; i < 10; i++) await call();
    const perBlock = Math.max(1, Math.ceil(1 / ((performance.now() - probeStart) / 10)));
    const samples = [];
    state.perBlock = perBlock;
    const stop = performance.now() + seconds * 1e3;
    while ((samples.length < minBlocks || performance.now() < stop) && samples.length < 100000) {
      const start = performance.now();
      for (let i = 0; i < perBlock; i++) await call();
      samples.push(((performance.now() - start) * 1e3) / perBlock);
    }
    return samples;
  } finally {
    dispose();
  }
}

// ---- start ------------------------------------------------------------------------------------------------
async function start() {
  state.info = await getJSON("/api/info");
  const { info } = state;
  const accuracy = info.keras_test_accuracy == null ? "" : ` · Keras test accuracy ${(100 * info.keras_test_accuracy).toFixed(2)}%`;
  $("bundle").textContent = `bundle ${info.bundle}${accuracy} · cross-origin isolated: ${crossOriginIsolated ? "yes" : "no (timings rounded)"}`;
  const picker = $("model");
  for (const model of info.models) {
    const option = new Option(
      model.why_not ? `${model.file} (${model.format}): cannot run here: ${model.why_not}`
        : `${model.file} (${model.format}) · ${runtimes[model.runtime].label}`, model.format);
    option.disabled = Boolean(model.why_not);
    picker.append(option);
  }
  picker.addEventListener("change", () => select(picker.value).catch((e) => status(e.message, true)));
  $("run-test").disabled = !info.test_digits;
  $("run-test").title = info.test_digits ? "" : info.test_digits_missing ?? "";
  if (!info.test_digits) $("test-result").textContent = `No test digits: ${info.test_digits_missing}`;
  $("run-test").addEventListener("click", async () => {
    $("run-test").disabled = true;
    try {
      await runTestDigits(Number($("count").value));
    } catch (error) {
      status(error.message, true);
    } finally {
      $("run-test").disabled = false;
    }
  });
  setUpPad();
  const wanted = new URLSearchParams(location.search).get("model");
  const first = info.models.find((m) => !m.why_not && (!wanted || m.format === wanted));
  if (first) await select(first.format);
  else status("no model of this bundle can run in this browser", true);
}

const ready = start().catch((error) => {
  status(String(error.message ?? error), true);
  throw error;
});
window.lenetEdge = { ready, select, runTestDigits, infer, time, state };
