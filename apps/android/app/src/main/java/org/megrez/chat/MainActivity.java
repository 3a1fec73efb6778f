package org.megrez.chat;

import android.app.Activity;
import android.os.Bundle;
import android.text.InputType;
import android.view.View;
import android.view.ViewGroup;
import android.widget.Button;
import android.widget.EditText;
import android.widget.LinearLayout;
import android.widget.ScrollView;
import android.widget.TextView;
import java.io.File;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * A minimal chat screen over MegrezNative: a model path (in the app's external files folder,
 * where `adb push` can put a model), a streamed reply, Stop, and tokens/s. Every library call
 * runs on one background thread; the UI thread only posts work and shows text.
 */
public final class MainActivity extends Activity {
  private final ExecutorService worker = Executors.newSingleThreadExecutor();
  private volatile long model = 0;
  private volatile long session = 0;
  private volatile boolean generating = false;

  private EditText modelPath;
  private EditText prompt;
  private TextView transcript;
  private TextView status;
  private ScrollView scroll;
  private Button load, send, stop;

  @Override
  protected void onCreate(Bundle saved) {
    super.onCreate(saved);
    final float dp = getResources().getDisplayMetrics().density;
    final int pad = (int) (8 * dp);

    LinearLayout root = new LinearLayout(this);
    root.setOrientation(LinearLayout.VERTICAL);
    root.setPadding(pad, pad, pad, pad);

    LinearLayout modelRow = new LinearLayout(this);
    modelPath = new EditText(this);
    File models = getExternalFilesDir(null);
    modelPath.setText(new File(models, "megrez2-tiny").getPath());
    modelPath.setSingleLine(true);
    load = new Button(this);
    load.setText("Load");
    modelRow.addView(modelPath, new LinearLayout.LayoutParams(0, ViewGroup.LayoutParams.WRAP_CONTENT, 1));
    modelRow.addView(load);

    status = new TextView(this);
    status.setText("No model loaded. adb push a model folder to " + models + "/");

    scroll = new ScrollView(this);
    transcript = new TextView(this);
    transcript.setTextIsSelectable(true);
    transcript.setTextSize(16);
    scroll.addView(transcript);

    LinearLayout inputRow = new LinearLayout(this);
    prompt = new EditText(this);
    prompt.setHint("Message");
    prompt.setInputType(InputType.TYPE_CLASS_TEXT | InputType.TYPE_TEXT_FLAG_MULTI_LINE);
    send = new Button(this);
    send.setText("Send");
    stop = new Button(this);
    stop.setText("Stop");
    inputRow.addView(prompt, new LinearLayout.LayoutParams(0, ViewGroup.LayoutParams.WRAP_CONTENT, 1));
    inputRow.addView(send);
    inputRow.addView(stop);

    root.addView(modelRow);
    root.addView(status);
    root.addView(scroll, new LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, 0, 1));
    root.addView(inputRow);
    setContentView(root);

    load.setOnClickListener(v -> loadModel(modelPath.getText().toString()));
    send.setOnClickListener(v -> sendMessage());
    stop.setOnClickListener(v -> {
      long s = session;
      if (s != 0) MegrezNative.cancel(s);  // any thread: the reply ends at the next token
    });
    updateButtons();
  }

  private void updateButtons() {
    load.setEnabled(!generating);
    send.setEnabled(session != 0 && !generating);
    stop.setEnabled(generating);
  }

  private void loadModel(final String path) {
    status.setText("Loading " + path + " ...");
    load.setEnabled(false);
    final String cacheDir = getCacheDir().getPath();
    worker.execute(() -> {
      release();
      try {
        long m = MegrezNative.loadModel(path, cacheDir, 2048);
        long s = MegrezNative.createSession(m);
        model = m;
        session = s;
        final String device = MegrezNative.deviceName(m);
        runOnUiThread(() -> {
          status.setText("Loaded on " + device);
          transcript.setText("");
          updateButtons();
        });
      } catch (MegrezException e) {
        final String message = e.getMessage();
        runOnUiThread(() -> {
          status.setText(message);  // the one-line error; the app stays usable
          updateButtons();
        });
      }
    });
  }

  private void sendMessage() {
    final String text = prompt.getText().toString().trim();
    if (text.isEmpty() || session == 0) return;
    prompt.setText("");
    transcript.append((transcript.length() > 0 ? "\n\n" : "") + "You: " + text + "\n\nMegrez: ");
    generating = true;
    updateButtons();
    worker.execute(() -> {
      String outcome;
      try {
        MegrezNative.chat(session, text, 0.7f, 512, piece -> {
          runOnUiThread(() -> {
            transcript.append(piece);
            scroll.post(() -> scroll.fullScroll(View.FOCUS_DOWN));
          });
          return true;
        });
        double[] s = MegrezNative.stats(session);
        outcome = String.format(Locale.US, "prompt %.1f t/s, reply %.1f t/s, first token %.0f ms, context %d/%d%s",
                                s[0], s[1], s[2], (int) s[4], (int) s[5], s[6] == 3 ? " (stopped)" : "");
      } catch (MegrezException e) {
        outcome = e.getMessage();
      }
      final String line = outcome;
      runOnUiThread(() -> {
        generating = false;
        status.setText(line);
        updateButtons();
      });
    });
  }

  private void release() {
    if (session != 0) MegrezNative.destroySession(session);
    if (model != 0) MegrezNative.freeModel(model);
    session = 0;
    model = 0;
  }

  @Override
  protected void onDestroy() {
    long s = session;
    if (s != 0) MegrezNative.cancel(s);
    worker.execute(this::release);
    worker.shutdown();
    super.onDestroy();
  }
}
