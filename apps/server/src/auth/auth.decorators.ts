import { SetMetadata, createParamDecorator, ExecutionContext } from '@nestjs/common';

/** Who may call a route. Operator (admin token) is the default when a route says nothing. */
export type Audience = 'public' | 'operator' | 'device' | 'operator-or-device';
export const AUDIENCE = 'ferry:audience';

/** No authentication: health checks, device registration (which checks its own key). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(AUDIENCE, 'public');
/** Authenticated by a device API key. */
export const DeviceOnly = (): MethodDecorator & ClassDecorator => SetMetadata(AUDIENCE, 'device');
/** The admin token or a device key (blob downloads). */
export const OperatorOrDevice = (): MethodDecorator & ClassDecorator =>
  SetMetadata(AUDIENCE, 'operator-or-device');

/** The device a request was authenticated as. */
export interface AuthenticatedDevice {
  uuid: string;
  fleetId: string;
}

export interface FerryRequest {
  device?: AuthenticatedDevice;
  ip?: string;
  id?: unknown;
}

/** Injects the authenticated device of a `@DeviceOnly()` route. */
export const CurrentDevice = createParamDecorator(
  (_data: unknown, context: ExecutionContext): AuthenticatedDevice => {
    const request = context.switchToHttp().getRequest<FerryRequest>();
    if (!request.device) throw new Error('CurrentDevice used on a route that is not device-authenticated');
    return request.device;
  },
);
