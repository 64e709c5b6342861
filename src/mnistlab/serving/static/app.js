// mnistlab drawing page: draw with pointer events, send the canvas as PNG to /api/predict,
// show the digit, the ten probabilities, the 28x28 input and the first layer's responses.
"use strict";

const STROKE_WIDTH = 20; // canvas pixels of 280 (the pen size's default): about 2 MNIST pixels once fitted
const UNDO_STEPS = 50; // strokes that Undo can take back
const LIVE_DELAY = 300; // ms after the last stroke movement before predicting as you draw
const INK = "#ffffff";
const PAPER = "#000000";

const pad = document.getElementById("pad");
const context = pad.getContext("2d");
const result = document.getElementById("result");
const digitView = document.getElementById("digit");
const confidenceView = document.getElementById("confidence");
const message = document.getElementById("message");
const bars = document.getElementById("bars");
const seen = document.getElementById("seen");
const maps = document.getElementById("maps");
const live = document.getElementById("live");
const hint = document.getElementById("pad-hint");

let drawing = false;
let hasInk = false;
let last = null;
let timer = null;
let sequence = 0; // answers to older requests are ignored
let inFlight = null;
let history = []; // the pad before each stroke (ImageData), for Undo
const pen = document.getElementById("pen");
const probabilityList = document.getElementById("probability-list");

// ---------------------------------------------------------------- bars
const barFills = [];
const barValues = [];
const barBoxes = [];
for (let digit = 0; digit < 10; digit += 1) {
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.innerHTML = `<span class="value"></span><div class="track"><div class="fill"></div></div><span class="name">${digit}</span>`;
  bars.appendChild(bar);
  barBoxes.push(bar);
  barValues.push(bar.querySelector(".value"));
  barFills.push(bar.querySelector(".fill"));
}

function showProbabilities(probabilities) {
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  for (let digit = 0; digit < 10; digit += 1) {
    const p = probabilities ? probabilities[digit] : 0;
    barFills[digit].style.height = `${Math.max(p * 100, probabilities ? 1.5 : 0)}%`;
    barValues[digit].textContent = probabilities ? formatPercent(p) : "";
    barBoxes[digit].classList.toggle("best", digit === best);
  }
  // the same as text, for screen readers: most likely first
  probabilityList.replaceChildren(
    ...(probabilities || [])
      .map((p, digit) => [p, digit])
      .sort((a, b) => b[0] - a[0])
      .map(([p, digit]) => {
        const item = document.createElement("li");
        item.textContent = `${digit}: ${formatPercent(p)}`;
        return item;
      }),
  );
}

function formatPercent(p) {
  if (p >= 0.995) return "100%";
  if (p >= 0.1) return `${Math.round(p * 100)}%`;
  if (p >= 0.001) return `${(p * 100).toFixed(1)}%`;
  return "0%";
}

// ---------------------------------------------------------------- drawing
function clearPad() {
  context.fillStyle = PAPER;
  context.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
  history = [];
  resetAnswer();
}

function resetAnswer() {
  // everything an answer showed goes: digit, bars, the input, the first layer, messages
  clearTimeout(timer);
  sequence += 1;
  if (inFlight) inFlight.abort();
  hint.classList.toggle("hidden", hasInk);
  result.dataset.status = "empty";
  delete result.dataset.digit;
  digitView.textContent = "?";
  confidenceView.textContent = "waiting for a drawing";
  message.hidden = true;
  showProbabilities(null);
  seen.getContext("2d").clearRect(0, 0, 28, 28);
  document.getElementById("layer-block").hidden = true;
  maps.replaceChildren();
  mapCanvases = [];
  document.getElementById("timing").textContent = "";
}

function undo() {
  if (!history.length) return;
  context.putImageData(history.pop(), 0, 0);
  hasInk = history.length > 0;
  resetAnswer();
  if (hasInk) schedule(0);
}

function position(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * pad.width) / box.width,
    y: ((event.clientY - box.top) * pad.height) / box.height,
  };
}

function strokeTo(point) {
  context.strokeStyle = INK;
  context.fillStyle = INK;
  const width = Number(pen.value) || STROKE_WIDTH;
  context.lineWidth = width;
  context.lineCap = "round";
  context.lineJoin = "round";
  context.beginPath();
  if (last) {
    context.moveTo(last.x, last.y);
    context.lineTo(point.x, point.y);
    context.stroke();
  } else {
    context.arc(point.x, point.y, width / 2, 0, 2 * Math.PI);
    context.fill();
  }
  last = point;
  hasInk = true;
  hint.classList.add("hidden");
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  last = null;
  if (!hasInk) history = []; // a photo or an example was shown: undo starts afresh
  history.push(context.getImageData(0, 0, pad.width, pad.height));
  if (history.length > UNDO_STEPS) history.shift();
  strokeTo(position(event));
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of events.length ? events : [event]) strokeTo(position(each));
  schedule(LIVE_DELAY);
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  last = null;
  schedule(120);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function schedule(delay) {
  if (!live.checked) return;
  clearTimeout(timer);
  timer = setTimeout(predict, delay);
}

// ---------------------------------------------------------------- predicting
function predict() {
  clearTimeout(timer);
  if (!hasInk) {
    showMessage("Draw a digit first.");
    return;
  }
  pad.toBlob((blob) => send("/api/predict?first_layer=true", blob), "image/png");
}

// POST an image (blob) or GET an example; shows the answer, or one clear error state
async function send(url, blob, describe) {
  const mine = ++sequence;
  result.dataset.status = "pending";
  if (inFlight) inFlight.abort();
  inFlight = new AbortController();
  const options = { signal: inFlight.signal };
  if (blob) {
    const form = new FormData();
    form.append("image", blob, blob.name || "digit.png");
    Object.assign(options, { method: "POST", body: form });
  }
  let response;
  let answer;
  try {
    response = await fetch(url, options);
    answer = await response.json();
  } catch (error) {
    if (error.name === "AbortError" || mine !== sequence) return;
    showError(
      response
        ? `The server answered ${response.status} without an explanation.`
        : "The server cannot be reached. Is `mnistlab serve` still running?",
    );
    return;
  }
  if (mine !== sequence) return;
  if (!response.ok) {
    showError(answer.error || `The server answered ${response.status}.`);
    return;
  }
  showAnswer(answer);
  if (describe) showMessage(describe(answer));
}

function showError(text) {
  result.dataset.status = "error";
  digitView.textContent = "!";
  confidenceView.textContent = "no answer";
  showProbabilities(null);
  seen.getContext("2d").clearRect(0, 0, 28, 28);
  document.getElementById("layer-block").hidden = true;
  showMessage(text);
}

function sendPhoto(file) {
  if (!file) return;
  context.fillStyle = PAPER;
  context.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
  history = [];
  resetAnswer();
  hint.classList.add("hidden");
  send("/api/predict?first_layer=true", file, () => `Your photo “${file.name}”: what the network saw is below.`);
}

function tryExample() {
  clearPad();
  hint.classList.add("hidden");
  send("/api/example", null, (answer) => `MNIST test image ${answer.index}, labelled ${answer.label}.`).then(() => {
    if (result.dataset.status === "ready") drawExample(); // the example, large, on the pad
  });
}

function drawExample() {
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  small.getContext("2d").drawImage(seen, 0, 0);
  context.imageSmoothingEnabled = false;
  context.drawImage(small, 0, 0, pad.width, pad.height);
}

function showMessage(text) {
  message.textContent = text;
  message.hidden = false;
}

function showAnswer(answer) {
  message.hidden = true;
  // in doubt (top probability below the model's threshold): no digit named, the top two said
  digitView.textContent = answer.doubt ? "?" : String(answer.digit);
  const p = answer.probabilities[answer.digit];
  confidenceView.textContent = answer.doubt ? answer.message : `${formatPercent(p)} sure`;
  result.dataset.doubt = String(Boolean(answer.doubt));
  showProbabilities(answer.probabilities);
  drawGray(seen, answer.input.flat(), 28, 28);
  if (answer.first_layer) showFirstLayer(answer.first_layer);
  const t = answer.timing_ms;
  document.getElementById("timing").textContent =
    `preprocessing ${t.preprocess.toFixed(1)} ms · network ${t.predict.toFixed(2)} ms`;
  result.dataset.status = "ready";
  result.dataset.digit = String(answer.digit);
}

function drawGray(canvas, values, width, height, palette) {
  const image = canvas.getContext("2d").createImageData(width, height);
  for (let i = 0; i < width * height; i += 1) {
    const v = values[i] || 0;
    const [r, g, b] = palette ? palette[v] : [v, v, v];
    image.data.set([r, g, b, 255], i * 4);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

// ---------------------------------------------------------------- first layer
// A perceptual ramp from black through indigo and teal to white (256 entries).
const RAMP = (() => {
  const stops = [
    [0, [0, 0, 0]],
    [0.3, [49, 46, 129]],
    [0.6, [20, 184, 166]],
    [0.85, [190, 242, 100]],
    [1, [255, 255, 255]],
  ];
  const table = [];
  for (let i = 0; i < 256; i += 1) {
    const t = i / 255;
    let k = 0;
    while (k < stops.length - 2 && t > stops[k + 1][0]) k += 1;
    const [t0, c0] = stops[k];
    const [t1, c1] = stops[k + 1];
    const f = (t - t0) / (t1 - t0);
    table.push(c0.map((c, j) => Math.round(c + (c1[j] - c) * f)));
  }
  return table;
})();

let mapCanvases = [];

function showFirstLayer(layer) {
  const bytes = Uint8Array.from(atob(layer.data), (c) => c.charCodeAt(0));
  const shape = layer.shape;
  document.getElementById("layer-block").hidden = false;
  document.getElementById("layer-shape").textContent =
    shape.length === 3 ? `${shape[2]} filters, ${shape[0]}×${shape[1]}` : `${shape[0]} units`;
  if (shape.length === 3) {
    const [height, width, count] = shape;
    maps.classList.remove("dense");
    if (mapCanvases.length !== count) {
      maps.replaceChildren();
      mapCanvases = Array.from({ length: count }, () => {
        const canvas = document.createElement("canvas");
        canvas.width = width;
        canvas.height = height;
        maps.appendChild(canvas);
        return canvas;
      });
    }
    for (let c = 0; c < count; c += 1) {
      drawGray(mapCanvases[c], bytes.subarray(c * height * width, (c + 1) * height * width), width, height, RAMP);
    }
  } else {
    const units = shape[0];
    const side = Math.ceil(Math.sqrt(units));
    maps.classList.add("dense");
    if (mapCanvases.length !== 1 || mapCanvases[0].width !== side) {
      const canvas = document.createElement("canvas");
      canvas.width = side;
      canvas.height = Math.ceil(units / side);
      maps.replaceChildren(canvas);
      mapCanvases = [canvas];
    }
    drawGray(mapCanvases[0], bytes, mapCanvases[0].width, mapCanvases[0].height, RAMP);
  }
}

// ---------------------------------------------------------------- start
document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("undo").addEventListener("click", undo);
document.getElementById("predict").addEventListener("click", predict);
document.getElementById("example").addEventListener("click", tryExample);
document.getElementById("file").addEventListener("change", (event) => {
  sendPhoto(event.target.files[0]);
  event.target.value = "";
});
const frame = pad.parentElement;
frame.addEventListener("dragover", (event) => {
  event.preventDefault();
  frame.classList.add("dropping");
});
frame.addEventListener("dragleave", () => frame.classList.remove("dropping"));
frame.addEventListener("drop", (event) => {
  event.preventDefault();
  frame.classList.remove("dropping");
  sendPhoto(event.dataTransfer.files[0]);
});
// Keys (shown on the page): Ctrl+Z (Cmd+Z) undo, Esc clear, Enter predict; Enter on a control
// does what that control does instead (a button presses, a file input opens its chooser)
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
    return;
  }
  if (event.key === "Escape") clearPad();
  if (event.key === "Enter" && !event.target.closest("button, input, label")) predict();
});

fetch("/api/health")
  .then((response) => response.json())
  .then((health) => {
    const runtime = health.runtime === "onnx" ? "ONNX Runtime" : "Keras";
    document.getElementById("model-info").textContent = `model ${health.model} · ${runtime}`;
  })
  .catch(() => {
    document.getElementById("model-info").textContent = "server not reachable";
  });

clearPad();
