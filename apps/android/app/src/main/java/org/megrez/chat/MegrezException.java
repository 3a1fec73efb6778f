package org.megrez.chat;

/** A failure of the megrez library: its status name and one-line message. */
public final class MegrezException extends Exception {
  public MegrezException(String message) {
    super(message);
  }
}
