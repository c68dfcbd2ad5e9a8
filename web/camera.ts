/** The camera button: the first click starts the camera, each later one captures a frame as a PNG image. */
import { $, setStatus } from './dom.ts';

let stream: MediaStream | undefined;

export async function toggleCamera(addImage: (file: Blob) => Promise<void>): Promise<void> {
  const video = $('video') as HTMLVideoElement;
  if (stream) {
    const c = document.createElement('canvas');
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext('2d')!.drawImage(video, 0, 0);
    const blob = await new Promise<Blob | null>((res) => c.toBlob(res, 'image/png'));
    if (blob) await addImage(blob);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    $('camera').textContent = 'Capture';
  } catch (e) {
    setStatus(`camera: ${(e as Error).message ?? e}`, true);
  }
}
