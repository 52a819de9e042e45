import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Logger, Module, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import express from 'express';

/** Where `npm run build:dashboard` writes the dashboard, from apps/server/{src,dist}/dashboard. */
export const DASHBOARD_DIR = resolve(__dirname, '..', '..', '..', 'dashboard', 'dist');

/**
 * Serves the web dashboard's static files at `/dashboard/` (and sends `/` there). Public: the page
 * itself holds no data; it asks for the admin token and calls the API with it. Mounted before Nest's
 * not-found handler, after the API routes, so the API is untouched.
 */
@Module({})
export class DashboardModule implements OnModuleInit {
  private readonly logger = new Logger(DashboardModule.name);

  constructor(private readonly host: HttpAdapterHost) {}

  onModuleInit(): void {
    const app = this.host.httpAdapter?.getInstance<express.Express>();
    if (!app) return;
    if (!existsSync(join(DASHBOARD_DIR, 'index.html'))) {
      this.logger.warn(`no dashboard at ${DASHBOARD_DIR}: run "npm run build:dashboard"`);
      return;
    }
    app.use(
      '/dashboard',
      express.static(DASHBOARD_DIR, {
        index: 'index.html',
        fallthrough: true,
        setHeaders: (response, path) => {
          // The page is small and changes with each build: always revalidate.
          response.setHeader('Cache-Control', path.endsWith('.html') ? 'no-cache' : 'public, max-age=300');
          response.setHeader('X-Content-Type-Options', 'nosniff');
          response.setHeader('Referrer-Policy', 'no-referrer');
          if (path.endsWith('.html'))
            response.setHeader(
              'Content-Security-Policy',
              "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
            );
        },
      }),
    );
    app.get('/', (_request, response) => response.redirect(302, '/dashboard/'));
  }
}
